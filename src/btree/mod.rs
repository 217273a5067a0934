//! The one B-tree implementation behind every index of the file.
//!
//! Keys are byte strings of 1 to 1024 bytes ordered bytewise; values are
//! small byte strings. Trees are copy-on-write: a committed node is never
//! changed; the writer copies the nodes it changes into an [`Arena`] of dirty
//! nodes, and the commit writes them to fresh pages. The B-tree knows pages
//! only through [`PageSource`]; the block storage implements it, assigns pages
//! to dirty nodes and frees the pages they replace.

pub(crate) mod node;
pub(crate) mod read;
pub(crate) mod tree;

pub(crate) use node::{NodeView, Ref};
pub(crate) use read::Reader;
pub(crate) use tree::{is_hot, Arena, Cx, Tree};

use crate::error::Result;

/// Identifies which index a node belongs to (stored in every node; spec §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TreeId(pub u8);

impl TreeId {
    /// The primary index: key → entry record.
    pub(crate) const PRIMARY: TreeId = TreeId(1);
    /// The LastUsed index: tick → key.
    pub(crate) const LAST_USED: TreeId = TreeId(2);
    /// The block storage's allocations index: offset → (length, kind).
    pub(crate) const ALLOC: TreeId = TreeId(3);
    /// The block storage's free-chunks index: (length, offset) → ().
    pub(crate) const FREE: TreeId = TreeId(4);
    /// Named groups of keys.
    pub(crate) const GROUPS: TreeId = TreeId(5);
    /// Trained compression dictionaries and their defaults.
    pub(crate) const DICTS: TreeId = TreeId(6);
    /// Every tree id in use, in the order commit records list them.
    pub(crate) const ALL: [TreeId; 6] = [
        TreeId::PRIMARY,
        TreeId::LAST_USED,
        TreeId::ALLOC,
        TreeId::FREE,
        TreeId::GROUPS,
        TreeId::DICTS,
    ];

    /// A human name, for reports.
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            1 => "primary index",
            2 => "LastUsed index",
            3 => "allocations index",
            4 => "free-chunks index",
            5 => "groups index",
            6 => "dictionaries index",
            _ => "unknown index",
        }
    }
}

/// Reads committed node pages for the B-tree.
pub(crate) trait PageSource {
    /// The committed node at `page`, checked: inside the file, CRC equal to
    /// `crc` (what the parent or commit record says it must be), belonging to
    /// `tree` at `level`.
    fn node(&self, page: u64, crc: u32, tree: TreeId, level: u8) -> Result<NodeView<'_>>;
}
