//! The grammar of the command line (clap derive): every command, its
//! arguments, its one-line description and its example. The `--json` field
//! lists shown by `--help` live here too, next to the flags they document.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::size::{parse_dict_size, parse_max_size};

/// Shown after `dfcache --help`.
const MAIN_AFTER_HELP: &str = "\
Keys are UTF-8 text; with --hex every key, prefix and group name is given and
printed as hex.
SIZE is bytes or a number with K, M, G, T (powers of 1024); 0 means unlimited.

Exit codes:
  0  success
  1  a key or group was not found, or problems were found (verify, damaged
     data, keys or names that cannot be exported or imported, too few
     samples for train-dict)
  2  usage error, or the file cannot be opened (missing, not a dfcache file,
     unsupported version, damaged header, no permission)
  3  the cache is locked by another writer
  4  the operation failed part-way (I/O error, no space left)

Example:
  dfcache create tiles.dfc --max-size 64M && dfcache import tiles.dfc ./tiles";

/// The `dfcache` command line.
#[derive(Parser, Debug)]
#[command(
    name = "dfcache",
    version,
    about = "A persistent, size-capped, crash-safe cache for dataset blocks in one file",
    after_help = MAIN_AFTER_HELP,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Take and print keys, prefixes and group names as hex, for binary keys
    #[arg(long, global = true)]
    pub hex: bool,
    /// No progress bars and no summary lines (errors and notes still go to stderr)
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty cache file with a maximum size
    #[command(after_help = "\
Refuses to replace an existing non-empty file unless --force is given, and
never replaces a file that is not a dfcache file.

Example:
  dfcache create tiles.dfc --max-size 64M")]
    Create(CreateArgs),

    /// Show the header, format version, entries, sizes, cap, fill and maximum age
    #[command(after_help = INFO_HELP)]
    Info(InfoArgs),

    /// Show per-dataset counts and sizes, the compression ratio and the largest entries
    #[command(after_help = STATS_HELP)]
    Stats(StatsArgs),

    /// List keys (with --long: sizes, codec, metadata, last use, insertion time)
    #[command(after_help = LS_HELP)]
    Ls(LsArgs),

    /// Write a value (or with --meta its metadata) to stdout or to a file (exit 1 if the key is absent)
    #[command(after_help = "\
The value is copied one frame (at most 1 MiB) at a time, so values larger
than memory stream through. With --meta the entry's metadata is written
instead of its value (nothing for an entry without metadata).

Example:
  dfcache get tiles.dfc 12/2210/1343.png -o tile.png
  dfcache get tiles.dfc 12/2210/1343.png --meta")]
    Get(GetArgs),

    /// Store a value read from a file or from stdin (with --meta: and its metadata)
    #[command(after_help = "\
SRC is a file; without SRC, or with '-', the value is read from stdin. Values
of up to 1 MiB are stored whole (compressed with the key's default dictionary,
if any); larger ones are streamed in 1 MiB frames in constant memory, so a
value may be larger than memory. A value that can never fit under the maximum
size is refused as soon as that is known (before reading, for a file).

Metadata (at most 64 KiB, e.g. JSON describing the value) is given as text
with --meta or read from a file with --meta-file; 'dfcache get --meta' reads it.

Example:
  dfcache put tiles.dfc 12/2210/1343.png tile.png
  gzip -dc tile.png.gz | dfcache put tiles.dfc 12/2210/1343.png
  dfcache put tiles.dfc 12/2210/1343.png tile.png --meta '{\"crs\": \"EPSG:3577\"}'")]
    Put(PutArgs),

    /// Remove keys (exit 1 if one was absent; the others are still removed)
    #[command(after_help = "\
Example:
  dfcache rm tiles.dfc 12/2210/1343.png 12/2210/1344.png")]
    Rm(RmArgs),

    /// Store every regular file under DIR, keyed by its '/'-separated path relative to DIR
    #[command(after_help = "\
Symlinks, sockets, FIFOs and devices are skipped (each one is named on stderr),
and so is the cache file itself. Names that cannot be keys (not UTF-8, keys
longer than 1024 bytes) are reported before anything is written. With --hex,
every file must lie directly in DIR and be named by its key in hex.

Example:
  dfcache import tiles.dfc ./tiles")]
    Import(ImportArgs),

    /// Write entries out as files under DIR (the reverse of import)
    #[command(after_help = "\
Each key becomes the file DIR/KEY, with directories created as needed. Keys
that cannot be safe relative paths (absolute, '..' or '.' components, empty
components, NUL, not UTF-8), keys that clash with each other or with files
already in DIR, and symlinked directories on the way are all refused before
anything is written: nothing is ever written outside DIR and no file is
overwritten. With --hex, each file is named by its key in hex, directly in
DIR (keys of up to 127 bytes). Negative entries have no value and are skipped.

Example:
  dfcache export tiles.dfc ./restored --prefix 12/")]
    Export(ExportArgs),

    /// Check every structure and checksum of the file (exit 1 if problems were found)
    #[command(after_help = "\
Problems are listed on stdout, one per line. Exit 0: sound; 1: problems
found; 2: the file could not be opened.

Example:
  dfcache verify tiles.dfc")]
    Verify(VerifyArgs),

    /// Rewrite the cache to its minimum size, in place (atomically) or to OUT
    #[command(after_help = "\
The copy is written to a temporary file beside the target, synced, and renamed
over it, so a crash leaves the original intact (at worst a stray
'.NAME.compact-*' file). An existing OUT is only replaced with --force, and
never if it is not a dfcache file.

Stored bytes are copied as they are. With --recompress every value of up to
1 MiB is decoded and compressed again with the current default dictionary for
its key (see train-dict), so values stored before the dictionary shrink too;
larger values are stored in 1 MiB frames and are copied as they are.

Example:
  dfcache compact tiles.dfc
  dfcache train-dict tiles.dfc && dfcache compact tiles.dfc --recompress")]
    Compact(CompactArgs),

    /// Remove every entry and shrink the file (the maximum size and age stay)
    #[command(after_help = "\
Example:
  dfcache clear tiles.dfc")]
    Clear(ClearArgs),

    /// Change the maximum size in place (lowering it evicts least recently used entries)
    #[command(after_help = "\
Example:
  dfcache resize tiles.dfc --max-size 1G")]
    Resize(ResizeArgs),

    /// Train a compression dictionary on values in the cache and make it the default for new values
    #[command(after_help = TRAIN_DICT_HELP)]
    TrainDict(TrainDictArgs),

    /// List the compression dictionaries: id, size, values using it, key prefixes it is the default for
    #[command(after_help = DICTS_HELP)]
    Dicts(DictsArgs),

    /// List the groups (named lists of keys) with their member counts
    #[command(after_help = GROUPS_HELP)]
    Groups(GroupsArgs),

    /// List the member keys of a group, in order (exit 1 if there is no such group)
    #[command(after_help = GROUP_HELP)]
    Group(GroupArgs),

    /// Create or replace a group: a named list of keys, given as arguments or one per line on stdin
    #[command(after_help = "\
A group lists keys; it does not own entries: its members need not be cached,
and evicting or removing an entry leaves the group as it is. Without KEY
arguments the keys are read from stdin, one per line: each line is a key's
bytes (with --hex, its hex); empty lines are skipped. So a listing can become
a group. Group names are 1 to 256 bytes.

Example:
  dfcache put-group tiles.dfc z12 12/2210/1343.png 12/2210/1344.png
  dfcache ls tiles.dfc --prefix 12/ | dfcache put-group tiles.dfc z12")]
    PutGroup(PutGroupArgs),

    /// Remove a group (not its members' entries; exit 1 if there is no such group)
    #[command(after_help = "\
Example:
  dfcache rm-group tiles.dfc z12")]
    RmGroup(RmGroupArgs),

    /// Run the read-through demo on an embedded default (no server, no setup)
    #[command(after_help = "\
Example:
  dfcache demo")]
    Demo,
}

/// `create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The cache file to create
    pub file: PathBuf,
    /// Maximum file size: bytes, or 512K, 64M, 10G, 1T; 0 = unlimited (else at least 1M)
    #[arg(long, value_name = "SIZE", value_parser = parse_max_size, allow_hyphen_values = true)]
    pub max_size: u64,
    /// Replace an existing cache file
    #[arg(long)]
    pub force: bool,
}

/// `info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The cache file
    pub file: PathBuf,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The cache file
    pub file: PathBuf,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// The cache file
    pub file: PathBuf,
    /// Only keys starting with P
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Show raw size, stored size, codec, metadata size, last use and insertion time
    #[arg(short, long)]
    pub long: bool,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `get`.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// The cache file
    pub file: PathBuf,
    /// The key
    pub key: String,
    /// Write the value to OUT instead of stdout
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub out: Option<PathBuf>,
    /// Write the entry's metadata instead of its value
    #[arg(long)]
    pub meta: bool,
}

/// `put`.
#[derive(Args, Debug)]
pub struct PutArgs {
    /// The cache file
    pub file: PathBuf,
    /// The key
    pub key: String,
    /// Where the value comes from: a file, or '-' (or nothing) for stdin
    pub src: Option<PathBuf>,
    /// Store TEXT as the entry's metadata (at most 64 KiB)
    #[arg(long, value_name = "TEXT", conflicts_with = "meta_file")]
    pub meta: Option<String>,
    /// Store the bytes of PATH as the entry's metadata (at most 64 KiB)
    #[arg(long, value_name = "PATH")]
    pub meta_file: Option<PathBuf>,
}

/// `rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// The cache file
    pub file: PathBuf,
    /// The keys to remove
    #[arg(required = true)]
    pub keys: Vec<String>,
}

/// `import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The cache file
    pub file: PathBuf,
    /// The folder to import
    pub dir: PathBuf,
}

/// `export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The cache file
    pub file: PathBuf,
    /// The folder to write into (created if needed)
    pub dir: PathBuf,
    /// Only keys starting with P (files keep their full key as path)
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
}

/// `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The cache file
    pub file: PathBuf,
}

/// `compact`.
#[derive(Args, Debug)]
pub struct CompactArgs {
    /// The cache file
    pub file: PathBuf,
    /// Write the compacted copy here instead of replacing FILE
    pub out: Option<PathBuf>,
    /// Replace an existing OUT (only if it is a dfcache file)
    #[arg(long)]
    pub force: bool,
    /// Re-encode values with the current default dictionary for their key
    #[arg(long)]
    pub recompress: bool,
}

/// `train-dict`.
#[derive(Args, Debug)]
pub struct TrainDictArgs {
    /// The cache file
    pub file: PathBuf,
    /// Largest dictionary size: bytes, or 8K, 64K, 1M (256 bytes to 1 MiB)
    #[arg(long, value_name = "SIZE", default_value = "8K", value_parser = parse_dict_size)]
    pub size: usize,
    /// Sample only keys starting with P, and make the dictionary the default for them only
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `dicts`.
#[derive(Args, Debug)]
pub struct DictsArgs {
    /// The cache file
    pub file: PathBuf,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `groups`.
#[derive(Args, Debug)]
pub struct GroupsArgs {
    /// The cache file
    pub file: PathBuf,
    /// Only groups whose names start with P
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `group`.
#[derive(Args, Debug)]
pub struct GroupArgs {
    /// The cache file
    pub file: PathBuf,
    /// The group's name
    pub name: String,
    /// List only the members that are not cached
    #[arg(long, conflicts_with = "json")]
    pub missing: bool,
    /// Print one JSON document (fields below)
    #[arg(long)]
    pub json: bool,
}

/// `put-group`.
#[derive(Args, Debug)]
pub struct PutGroupArgs {
    /// The cache file
    pub file: PathBuf,
    /// The group's name (1 to 256 bytes)
    pub name: String,
    /// The member keys, in order; without any, one per line from stdin
    pub keys: Vec<String>,
}

/// `rm-group`.
#[derive(Args, Debug)]
pub struct RmGroupArgs {
    /// The cache file
    pub file: PathBuf,
    /// The group's name
    pub name: String,
}

/// `clear`.
#[derive(Args, Debug)]
pub struct ClearArgs {
    /// The cache file
    pub file: PathBuf,
}

/// `resize`.
#[derive(Args, Debug)]
pub struct ResizeArgs {
    /// The cache file
    pub file: PathBuf,
    /// New maximum file size: bytes, or 512K, 64M, 10G, 1T; 0 = unlimited (else at least 1M)
    #[arg(long, value_name = "SIZE", value_parser = parse_max_size, allow_hyphen_values = true)]
    pub max_size: u64,
}

/// `info --help`: the JSON fields.
const INFO_HELP: &str = "\
JSON fields (--json):
  file                   the path as given
  format_version         the file format version (3)
  header                 the header bytes as stored (a mirror of the last commit):
    magic                  bytes 0..8 in hex (894847430d0a1a0a)
    format_version         bytes 8..10
    maximum_file_size      bytes 10..18 (0 = unlimited)
    primary_root           block ID of the primary index root
    last_used_root         block ID of the LastUsed index root
    block_storage_magic    bytes 64..72 in hex (894253540d0a1a0a)
    block_storage_version  bytes 72..74
    allocations_root       block ID of the allocations index root
    free_chunks_root       block ID of the free-chunks index root
  commit                 the newest valid commit record (null if none could be read):
    sequence               its sequence number
    kind                   \"two-phase\" or \"one-phase\"
    file_len               bytes of the file the committed state uses
    free_bytes             bytes in free chunks (what compact can give back)
    committed_at           when, RFC 3339 UTC
    committed_at_unix_ms   when, Unix milliseconds
  entries                entries (negative entries included)
  raw_bytes              live bytes: sum of the values' lengths
  stored_bytes           bytes the values take in the file (compressed)
  meta_bytes             bytes of per-entry metadata
  file_size              length of the file
  maximum_file_size      the cap in bytes (0 = unlimited)
  fill_percent           file_size / maximum_file_size * 100 (null if unlimited)
  maximum_age_ms         maximum entry age in milliseconds (null if none)

Example:
  dfcache info tiles.dfc --json";

/// `stats --help`: the JSON fields.
const STATS_HELP: &str = "\
Keys of 28 bytes are dataset block keys (GUID, revision, block index) and are
grouped by dataset and revision; other keys (and 28-byte keys that are
printable text) are counted as \"other\". The largest entries are the 10
that take the most bytes in the file.

JSON fields (--json):
  file                   the path as given
  entries                entries (negative entries included)
  negative_entries       entries that cache \"no such block\"
  raw_bytes              sum of the values' lengths
  stored_bytes           bytes the values take in the file
  meta_bytes             bytes of per-entry metadata
  compression_ratio      raw_bytes / stored_bytes (null if nothing is stored)
  datasets               one object per dataset revision, in key order:
    dataset                \"GUID@REVISION\"
    guid                   the dataset GUID
    revision               the revision
    entries, negative_entries, raw_bytes, stored_bytes   as above
    first_block, last_block  the lowest and highest block index cached
  other                  keys that are not block keys:
    entries, negative_entries, raw_bytes, stored_bytes   as above
  largest                up to 10 entries, most stored bytes first:
    key                    the key as UTF-8 text (null if not UTF-8)
    key_hex                the key in hex
    raw_bytes, stored_bytes
    codec                  \"raw\" or \"zstd\"

Example:
  dfcache stats tiles.dfc --json";

/// `ls --help`: the JSON fields.
const LS_HELP: &str = "\
Keys that are not printable UTF-8 are printed as hex (with --hex, all are).
Columns of --long: raw bytes, stored bytes, codec, metadata bytes, last use
(the LRU tick: larger is more recent), insertion time (UTC), key. The codec
column says raw or zstd, then +dictN for a value compressed with dictionary N
(see dicts), ',chunked' for a value stored in 1 MiB frames, and 'absent' for
a negative entry.

JSON fields (--json, always the long form):
  entries                the entries in key order, each with:
    key                    the key as UTF-8 text (null if not UTF-8)
    key_hex                the key in hex
    raw_bytes              the value's length
    stored_bytes           bytes it takes in the file
    codec                  \"raw\" or \"zstd\"
    dictionary             compression dictionary id (0 = none)
    chunked                whether it is stored in 1 MiB chunks
    absent                 whether it is a negative entry (no value)
    meta_bytes             bytes of its metadata
    last_use               LRU tick (larger is more recent)
    inserted               insertion time, RFC 3339 UTC
    inserted_unix_ms       insertion time, Unix milliseconds

Example:
  dfcache ls tiles.dfc --prefix 12/ --long";

/// `train-dict --help`: samples, exit codes and the JSON fields.
const TRAIN_DICT_HELP: &str = "\
Samples are values already in the cache (under P with --prefix): up to 1000
values of 1 byte to 1 MiB (larger values are skipped; they are stored in
frames that do not use dictionaries), spread evenly over the keys, at most
32 MiB in all. Reading them does not count as a use. The dictionary is
stored in the file and becomes the default for new values (for keys starting
with P with --prefix); values already stored keep theirs until
'dfcache compact --recompress'.

Exit 1 when there are too few samples: fewer than 8 values to sample, less
than 1 KiB of them in all, or values zstd cannot train on (give it dozens of
representative values).

JSON fields (--json):
  file                   the path as given
  id                     the new dictionary's id (values record it; ls shows it)
  size                   its size in bytes (at most --size)
  samples                values it was trained on
  sample_bytes           their total length
  candidates             values that could be sampled (1 byte to 1 MiB)
  prefix                 the key prefix it is the default for, as UTF-8 text
                         (\"\" = all keys; null if not UTF-8)
  prefix_hex             the same prefix in hex

Example:
  dfcache train-dict tiles.dfc --size 16K --prefix 12/";

/// `dicts --help`: the JSON fields.
const DICTS_HELP: &str = "\
Columns: id, size, values compressed with it, key prefixes it is the default
for ('*' for all keys; '-' when it is the default for none).

JSON fields (--json):
  dictionaries           the dictionaries in id order, each with:
    id                     its id (values record it; 0 means none)
    size                   its size in bytes
    values                 entries whose value is compressed with it
    default_for            the key prefixes it is the default for, each with:
      prefix                 the prefix as UTF-8 text (\"\" = all keys; null if not UTF-8)
      prefix_hex             the prefix in hex

Example:
  dfcache dicts tiles.dfc --json";

/// `groups --help`: the JSON fields.
const GROUPS_HELP: &str = "\
One line per group, in name order: the member count, then the name (names
that are not printable UTF-8 are printed as hex; with --hex, all are).

JSON fields (--json):
  groups                 the groups in name order, each with:
    name                   the name as UTF-8 text (null if not UTF-8)
    name_hex               the name in hex
    members                how many keys it lists

Example:
  dfcache groups tiles.dfc --prefix albers/";

/// `group --help`: the JSON fields.
const GROUP_HELP: &str = "\
One member key per line, in group order. Members need not be cached: a group
keeps listing keys that were evicted or removed; a note on stderr says how
many are not cached, and --missing lists just those.

JSON fields (--json):
  name                   the group name as UTF-8 text (null if not UTF-8)
  name_hex               the name in hex
  members                how many keys it lists
  missing                how many of them are not cached
  keys                   the members in group order, each with:
    key                    the key as UTF-8 text (null if not UTF-8)
    key_hex                the key in hex
    cached                 whether the cache holds an entry for it

Example:
  dfcache group tiles.dfc albers/10_12 --json";
