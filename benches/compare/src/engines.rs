//! The engines behind one interface: bulk load, durable commits, gets,
//! scans. Each uses its natural best API; the settings are listed in
//! BENCHMARKS.md (see `notes` in `report.rs`).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use anyhow::{anyhow, Context, Result};
use dfcache::{DatasetFileCache, Flushable, OpenOptions};
use heed::types::Bytes;
use redb::{ReadableDatabase, TableDefinition};

use crate::data::Data;

/// The engines compared, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// dfcache, this project.
    Dfcache,
    /// LMDB through heed.
    Lmdb,
    /// redb.
    Redb,
    /// SQLite through rusqlite (bundled), WAL mode.
    Sqlite,
    /// fjall (LSM tree).
    Fjall,
    /// An in-memory `std::collections::HashMap`: the upper bound for gets.
    HashMap,
}

impl Kind {
    /// Every engine with a file, in table order.
    pub const ENGINES: [Kind; 5] = [
        Kind::Dfcache,
        Kind::Lmdb,
        Kind::Redb,
        Kind::Sqlite,
        Kind::Fjall,
    ];

    /// The column title.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dfcache => "dfcache",
            Kind::Lmdb => "LMDB",
            Kind::Redb => "redb",
            Kind::Sqlite => "SQLite",
            Kind::Fjall => "fjall",
            Kind::HashMap => "HashMap",
        }
    }

    /// The engine named `s` (case-insensitive).
    pub fn parse(s: &str) -> Result<Kind> {
        let all = [
            Kind::Dfcache,
            Kind::Lmdb,
            Kind::Redb,
            Kind::Sqlite,
            Kind::Fjall,
            Kind::HashMap,
        ];
        all.into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| anyhow!("unknown engine {s:?} (dfcache, lmdb, redb, sqlite, fjall)"))
    }

    /// Whether reads go through explicit read transactions (so that "one
    /// read transaction for all gets" is a variant worth measuring).
    pub fn has_read_txn(self) -> bool {
        matches!(self, Kind::Lmdb | Kind::Redb | Kind::Sqlite)
    }

    /// Creates a fresh store in `dir` (which must be empty or absent).
    pub fn create(self, dir: &Path) -> Result<Box<dyn Store>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        self.open_in(dir, true)
            .with_context(|| format!("creating a {} store in {}", self.name(), dir.display()))
    }

    /// Opens the store in `dir`.
    pub fn open(self, dir: &Path) -> Result<Box<dyn Store>> {
        self.open_in(dir, false)
            .with_context(|| format!("opening the {} store in {}", self.name(), dir.display()))
    }

    fn open_in(self, dir: &Path, create: bool) -> Result<Box<dyn Store>> {
        Ok(match self {
            Kind::Dfcache => Box::new(Dfc::open(dir, create)?),
            Kind::Lmdb => Box::new(Lmdb::open(dir, create)?),
            Kind::Redb => Box::new(Redb::open(dir, create)?),
            Kind::Sqlite => Box::new(Sqlite::open(dir, create)?),
            Kind::Fjall => Box::new(Fjall::open(dir, create)?),
            Kind::HashMap => Box::new(Mem::default()),
        })
    }
}

/// One engine's store of (28-byte key, value) pairs.
pub trait Store: Sync {
    /// Puts value `i` under key `i` for every `i` in `order`, in that order,
    /// in one durable commit.
    fn load(&self, d: &Data, order: &[u32]) -> Result<()>;

    /// Puts the given blocks in one durable commit.
    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()>;

    /// Gets every block in `seq` and checks its CRC. `one_txn`: all gets in
    /// one read transaction (engines with read transactions) instead of one
    /// per get.
    fn gets(&self, d: &Data, seq: &[u32], one_txn: bool) -> Result<()>;

    /// Reads every entry in key order, checking each value; returns the
    /// number of entries.
    fn scan(&self, d: &Data) -> Result<u64>;
}

/// Total bytes of the files under `dir`.
pub fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e?;
        let m = e.metadata()?;
        total += if m.is_dir() {
            dir_bytes(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(total)
}

// ---------------------------------------------------------------- dfcache

/// dfcache with default options (fsync on flush, zstd level 3 when it saves
/// 10 %), no size cap for the plain workloads.
struct Dfc {
    c: DatasetFileCache,
}

impl Dfc {
    fn open(dir: &Path, create: bool) -> Result<Dfc> {
        let path = dir.join("cache.dfc");
        let c = if create {
            OpenOptions::new().create(&path, 0)?
        } else {
            OpenOptions::new().open(&path)?
        };
        Ok(Dfc { c })
    }
}

impl Store for Dfc {
    fn load(&self, d: &Data, order: &[u32]) -> Result<()> {
        let mut buf = vec![0u8; d.value_len];
        for &i in order {
            d.fill(i as u64, &mut buf);
            self.c.put(&d.key(i as u64), &buf)?;
        }
        self.c.flush()?;
        Ok(())
    }

    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()> {
        let mut buf = vec![0u8; d.value_len];
        for &i in idx {
            d.fill(i, &mut buf);
            self.c.put(&d.key(i), &buf)?;
        }
        self.c.flush()?;
        Ok(())
    }

    fn gets(&self, d: &Data, seq: &[u32], _one_txn: bool) -> Result<()> {
        for &i in seq {
            let v = self
                .c
                .get(&d.key(i as u64))?
                .with_context(|| format!("dfcache: block {i} missing"))?;
            d.check(i as u64, &v)?;
        }
        Ok(())
    }

    fn scan(&self, d: &Data) -> Result<u64> {
        let mut n = 0;
        for e in self.c.scan(&[])? {
            let (k, v) = e?;
            d.check_kv(&k, &v)?;
            n += 1;
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------- LMDB

/// LMDB's map size: far beyond any data set here (the map is sparse).
pub const LMDB_MAP_SIZE: usize = 64 << 30;

/// LMDB with default flags (fsync on commit), one unnamed database.
struct Lmdb {
    env: Option<heed::Env>,
    db: heed::Database<Bytes, Bytes>,
}

impl Lmdb {
    fn open(dir: &Path, create: bool) -> Result<Lmdb> {
        // SAFETY: the directory is ours alone; nothing else maps it.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .map_size(LMDB_MAP_SIZE)
                .max_readers(126)
                .open(dir)?
        };
        let db = if create {
            let mut w = env.write_txn()?;
            let db = env.create_database(&mut w, None)?;
            w.commit()?;
            db
        } else {
            let r = env.read_txn()?;
            let db = env
                .open_database(&r, None)?
                .context("LMDB: no unnamed database")?;
            r.commit()?;
            db
        };
        Ok(Lmdb { env: Some(env), db })
    }

    fn env(&self) -> &heed::Env {
        self.env.as_ref().expect("LMDB env is open until drop")
    }
}

impl Drop for Lmdb {
    fn drop(&mut self) {
        if let Some(env) = self.env.take() {
            env.prepare_for_closing().wait();
        }
    }
}

impl Store for Lmdb {
    fn load(&self, d: &Data, order: &[u32]) -> Result<()> {
        let mut w = self.env().write_txn()?;
        let mut buf = vec![0u8; d.value_len];
        for &i in order {
            d.fill(i as u64, &mut buf);
            self.db.put(&mut w, &d.key(i as u64), &buf)?;
        }
        w.commit()?;
        Ok(())
    }

    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()> {
        let mut w = self.env().write_txn()?;
        let mut buf = vec![0u8; d.value_len];
        for &i in idx {
            d.fill(i, &mut buf);
            self.db.put(&mut w, &d.key(i), &buf)?;
        }
        w.commit()?;
        Ok(())
    }

    fn gets(&self, d: &Data, seq: &[u32], one_txn: bool) -> Result<()> {
        let env = self.env();
        let get = |r: &heed::RoTxn, i: u32| -> Result<()> {
            let v = self
                .db
                .get(r, &d.key(i as u64))?
                .with_context(|| format!("LMDB: block {i} missing"))?;
            d.check(i as u64, v)
        };
        if one_txn {
            let r = env.read_txn()?;
            for &i in seq {
                get(&r, i)?;
            }
        } else {
            for &i in seq {
                let r = env.read_txn()?;
                get(&r, i)?;
            }
        }
        Ok(())
    }

    fn scan(&self, d: &Data) -> Result<u64> {
        let r = self.env().read_txn()?;
        let mut n = 0;
        for kv in self.db.iter(&r)? {
            let (k, v) = kv?;
            d.check_kv(k, v)?;
            n += 1;
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------- redb

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// redb with defaults: `Durability::Immediate`, 1 GiB cache.
struct Redb {
    db: redb::Database,
}

impl Redb {
    fn open(dir: &Path, create: bool) -> Result<Redb> {
        let path = dir.join("db.redb");
        let db = if create {
            let db = redb::Database::create(&path)?;
            let w = db.begin_write()?;
            w.open_table(KV)?;
            w.commit()?;
            db
        } else {
            redb::Database::open(&path)?
        };
        Ok(Redb { db })
    }

    fn put_all(&self, d: &Data, idx: impl Iterator<Item = u64>) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            let mut t = w.open_table(KV)?;
            let mut buf = vec![0u8; d.value_len];
            for i in idx {
                d.fill(i, &mut buf);
                t.insert(&d.key(i)[..], &buf[..])?;
            }
        }
        w.commit()?;
        Ok(())
    }
}

impl Store for Redb {
    fn load(&self, d: &Data, order: &[u32]) -> Result<()> {
        self.put_all(d, order.iter().map(|&i| i as u64))
    }

    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()> {
        self.put_all(d, idx.iter().copied())
    }

    fn gets(&self, d: &Data, seq: &[u32], one_txn: bool) -> Result<()> {
        let get = |t: &redb::ReadOnlyTable<&[u8], &[u8]>, i: u32| -> Result<()> {
            let g = t
                .get(&d.key(i as u64)[..])?
                .with_context(|| format!("redb: block {i} missing"))?;
            d.check(i as u64, g.value())
        };
        if one_txn {
            let r = self.db.begin_read()?;
            let t = r.open_table(KV)?;
            for &i in seq {
                get(&t, i)?;
            }
        } else {
            for &i in seq {
                let r = self.db.begin_read()?;
                let t = r.open_table(KV)?;
                get(&t, i)?;
            }
        }
        Ok(())
    }

    fn scan(&self, d: &Data) -> Result<u64> {
        let r = self.db.begin_read()?;
        let t = r.open_table(KV)?;
        let mut n = 0;
        for kv in t.range::<&[u8]>(..)? {
            let (k, v) = kv?;
            d.check_kv(k.value(), v.value())?;
            n += 1;
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------- SQLite

/// SQLite's memory-map size (reads come from the map, like LMDB's).
pub const SQLITE_MMAP: i64 = 16 << 30;
/// SQLite's page cache per connection: 64 MiB (negative = KiB).
pub const SQLITE_CACHE_KIB: i64 = -65536;
/// The key-value table: values in a rowid table (appended in insert order),
/// keys in a unique index. Faster than a `WITHOUT ROWID` table keyed by the
/// key for values of 1 KiB and more: 2-10x on loads and gets here.
pub const SQLITE_SCHEMA: &str =
    "CREATE TABLE kv (id INTEGER PRIMARY KEY, k BLOB UNIQUE NOT NULL, v BLOB NOT NULL)";

/// A SQLite connection with the benchmark's settings: WAL, the given
/// `synchronous` level, a large mmap, a 64 MiB page cache.
pub fn sqlite_conn(path: &Path, synchronous: &str) -> Result<rusqlite::Connection> {
    let c = rusqlite::Connection::open(path)?;
    let mode: String = c.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    anyhow::ensure!(
        mode.eq_ignore_ascii_case("wal"),
        "SQLite refused WAL mode: {mode}"
    );
    c.pragma_update(None, "synchronous", synchronous)?;
    let _: i64 = c.pragma_update_and_check(None, "mmap_size", SQLITE_MMAP, |r| r.get(0))?;
    c.pragma_update(None, "cache_size", SQLITE_CACHE_KIB)?;
    Ok(c)
}

/// SQLite: [`SQLITE_SCHEMA`], WAL, `synchronous=FULL`, prepared (cached)
/// statements, zero-copy blob reads.
struct Sqlite {
    path: PathBuf,
    w: Mutex<rusqlite::Connection>,
}

impl Sqlite {
    fn open(dir: &Path, create: bool) -> Result<Sqlite> {
        let path = dir.join("db.sqlite");
        let c = sqlite_conn(&path, "FULL")?;
        if create {
            c.execute_batch(SQLITE_SCHEMA)?;
        }
        Ok(Sqlite {
            path,
            w: Mutex::new(c),
        })
    }

    fn put_all(&self, d: &Data, idx: impl Iterator<Item = u64>) -> Result<()> {
        let c = self.w.lock().expect("SQLite writer lock poisoned");
        c.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut st = c.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
            let mut buf = vec![0u8; d.value_len];
            for i in idx {
                d.fill(i, &mut buf);
                st.execute((&d.key(i)[..], &buf[..]))?;
            }
        }
        c.execute_batch("COMMIT")?;
        Ok(())
    }
}

impl Store for Sqlite {
    fn load(&self, d: &Data, order: &[u32]) -> Result<()> {
        self.put_all(d, order.iter().map(|&i| i as u64))
    }

    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()> {
        self.put_all(d, idx.iter().copied())
    }

    fn gets(&self, d: &Data, seq: &[u32], one_txn: bool) -> Result<()> {
        // A connection per reading thread (a connection is not Sync).
        let c = sqlite_conn(&self.path, "FULL")?;
        if one_txn {
            c.execute_batch("BEGIN")?;
        }
        {
            let mut st = c.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
            for &i in seq {
                let mut rows = st.query([&d.key(i as u64)[..]])?;
                let row = rows
                    .next()?
                    .with_context(|| format!("SQLite: block {i} missing"))?;
                d.check(i as u64, row.get_ref(0)?.as_blob()?)?;
            }
        }
        if one_txn {
            c.execute_batch("COMMIT")?;
        }
        Ok(())
    }

    fn scan(&self, d: &Data) -> Result<u64> {
        let c = sqlite_conn(&self.path, "FULL")?;
        let mut st = c.prepare("SELECT k, v FROM kv ORDER BY k")?;
        let mut rows = st.query([])?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            d.check_kv(row.get_ref(0)?.as_blob()?, row.get_ref(1)?.as_blob()?)?;
            n += 1;
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------- fjall

/// fjall's block cache (its docs suggest 20-25 % of RAM; 1 GiB holds every
/// data set's index and filter blocks here).
pub const FJALL_CACHE: u64 = 1 << 30;

/// The keyspace options used for values: key-value separation (blob files
/// for values of 1 KiB and more, fjall's recommendation for large values).
pub fn fjall_value_opts() -> fjall::KeyspaceCreateOptions {
    fjall::KeyspaceCreateOptions::default()
        .with_kv_separation(Some(fjall::KvSeparationOptions::default()))
}

/// fjall: one keyspace with key-value separation, durable commits with
/// `PersistMode::SyncAll`.
struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
}

impl Fjall {
    fn open(dir: &Path, _create: bool) -> Result<Fjall> {
        let db = fjall::Database::builder(dir)
            .cache_size(FJALL_CACHE)
            .open()?;
        let ks = db.keyspace("kv", fjall_value_opts)?;
        Ok(Fjall { db, ks })
    }
}

impl Store for Fjall {
    fn load(&self, d: &Data, order: &[u32]) -> Result<()> {
        let mut buf = vec![0u8; d.value_len];
        for &i in order {
            d.fill(i as u64, &mut buf);
            self.ks.insert(&d.key(i as u64)[..], &buf[..])?;
        }
        self.db.persist(fjall::PersistMode::SyncAll)?;
        Ok(())
    }

    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()> {
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall::PersistMode::SyncAll));
        let mut buf = vec![0u8; d.value_len];
        for &i in idx {
            d.fill(i, &mut buf);
            b.insert(&self.ks, &d.key(i)[..], &buf[..]);
        }
        b.commit()?;
        Ok(())
    }

    fn gets(&self, d: &Data, seq: &[u32], _one_txn: bool) -> Result<()> {
        for &i in seq {
            let v = self
                .ks
                .get(d.key(i as u64))?
                .with_context(|| format!("fjall: block {i} missing"))?;
            d.check(i as u64, &v)?;
        }
        Ok(())
    }

    fn scan(&self, d: &Data) -> Result<u64> {
        let mut n = 0;
        for g in self.ks.iter() {
            let (k, v) = g.into_inner()?;
            d.check_kv(&k, &v)?;
            n += 1;
        }
        Ok(n)
    }
}

// ---------------------------------------------------------------- HashMap

/// `std::collections::HashMap<[u8; 28], Vec<u8>>` (default SipHash): what a
/// get costs with no storage engine at all.
#[derive(Default)]
struct Mem {
    map: RwLock<std::collections::HashMap<[u8; 28], Vec<u8>>>,
}

impl Store for Mem {
    fn load(&self, d: &Data, order: &[u32]) -> Result<()> {
        let mut m = self.map.write().expect("HashMap lock poisoned");
        for &i in order {
            m.insert(d.key(i as u64), d.value(i as u64));
        }
        Ok(())
    }

    fn commit(&self, d: &Data, idx: &[u64]) -> Result<()> {
        let mut m = self.map.write().expect("HashMap lock poisoned");
        for &i in idx {
            m.insert(d.key(i), d.value(i));
        }
        Ok(())
    }

    fn gets(&self, d: &Data, seq: &[u32], _one_txn: bool) -> Result<()> {
        let m = self.map.read().expect("HashMap lock poisoned");
        for &i in seq {
            let v = m
                .get(&d.key(i as u64))
                .with_context(|| format!("HashMap: block {i} missing"))?;
            d.check(i as u64, v)?;
        }
        Ok(())
    }

    fn scan(&self, d: &Data) -> Result<u64> {
        let m = self.map.read().expect("HashMap lock poisoned");
        for (k, v) in m.iter() {
            d.check_kv(k, v)?;
        }
        Ok(m.len() as u64)
    }
}
