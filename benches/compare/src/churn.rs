//! Cache churn: a size-capped LRU read-through cache in front of a
//! zero-latency source.
//!
//! dfcache uses its own [`CachedDataset`]. For the other engines the LRU is
//! built the way a user would: a data table, a "last use" table (key → tick)
//! and an LRU table (tick → key); every read is one write transaction that
//! reads the value and, on a hit, moves the key to the newest tick, or, on a
//! miss, reads the source, evicts the oldest entries while the payload would
//! exceed the cap, and inserts. Those transactions use each engine's
//! non-durable mode (no fsync per read). The payload counter and the tick
//! live in memory (a real user would persist them; that only costs them
//! more).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use dfcache::{CachedDataset, Dataset, DatasetId, OpenOptions};
use heed::types::Bytes;
use redb::{ReadableTable, TableDefinition};

use crate::data::Data;
use crate::engines::{fjall_value_opts, sqlite_conn, Kind, FJALL_CACHE, LMDB_MAP_SIZE};

/// A read-through cache under test.
pub trait Lru {
    /// Reads block `i` (from the cache, or from the source and then caches
    /// it), checks it; returns whether it was a hit.
    fn read(&mut self, i: u64) -> Result<bool>;

    /// Blocks the cache holds now.
    fn held(&self) -> Result<u64>;
}

/// The zero-latency source: generates block `i` on demand.
pub struct Source(pub Arc<Data>);

impl Dataset for Source {
    fn id(&self) -> DatasetId {
        self.0.id
    }

    fn read_block(&self, index: u64) -> dfcache::Result<Option<Vec<u8>>> {
        Ok(Some(self.0.value(index)))
    }
}

/// Which churn cache to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// An engine with its default churn settings (dfcache: default options,
    /// i.e. fsync on its own commits).
    Default(Kind),
    /// dfcache opened with `OpenOptions::sync(false)`.
    DfcacheNoSync,
    /// dfcache whose file cap is [`roomy_cap`] of the cap: room for as much
    /// payload as the others' payload cap allows, besides its indexes.
    DfcacheRoomy,
}

/// The file cap of [`Variant::DfcacheRoomy`] for a payload cap `cap`: a
/// sixteenth more.
pub fn roomy_cap(cap: u64) -> u64 {
    cap + cap / 16
}

impl Variant {
    /// Column title.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Default(k) => k.name(),
            Variant::DfcacheNoSync => "dfcache sync(false)",
            Variant::DfcacheRoomy => "dfcache, roomier cap",
        }
    }

    /// Builds the cache in `dir` with a payload cap of `cap` bytes.
    pub fn build(self, dir: &Path, d: Arc<Data>, cap: u64) -> Result<Box<dyn Lru>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(match self {
            Variant::Default(Kind::Dfcache) => Box::new(DfcLru::new(dir, d, cap, true)?),
            Variant::DfcacheNoSync => Box::new(DfcLru::new(dir, d, cap, false)?),
            Variant::DfcacheRoomy => Box::new(DfcLru::new(dir, d, roomy_cap(cap), true)?),
            Variant::Default(Kind::Lmdb) => Box::new(LmdbLru::new(dir, d, cap)?),
            Variant::Default(Kind::Redb) => Box::new(RedbLru::new(dir, d, cap)?),
            Variant::Default(Kind::Sqlite) => Box::new(SqliteLru::new(dir, d, cap)?),
            Variant::Default(Kind::Fjall) => Box::new(FjallLru::new(dir, d, cap)?),
            Variant::Default(Kind::HashMap) => anyhow::bail!("no churn cache for HashMap"),
        })
    }
}

// ---------------------------------------------------------------- dfcache

struct DfcLru {
    cd: CachedDataset<Source>,
    d: Arc<Data>,
}

impl DfcLru {
    fn new(dir: &Path, d: Arc<Data>, cap: u64, sync: bool) -> Result<DfcLru> {
        let cache = OpenOptions::new()
            .sync(sync)
            .create(dir.join("cache.dfc"), cap)?;
        Ok(DfcLru {
            cd: CachedDataset::new(Source(d.clone()), Arc::new(cache)),
            d,
        })
    }
}

impl Lru for DfcLru {
    fn read(&mut self, i: u64) -> Result<bool> {
        let before = self.cd.source_reads();
        let v = self
            .cd
            .read_block(i)?
            .with_context(|| format!("dfcache churn: block {i} absent"))?;
        self.d.check(i, &v)?;
        Ok(self.cd.source_reads() == before)
    }

    fn held(&self) -> Result<u64> {
        Ok(self.cd.cache().len())
    }
}

/// Common LRU bookkeeping: the newest tick and the payload held.
struct Books {
    d: Arc<Data>,
    cap: u64,
    used: u64,
    tick: u64,
}

impl Books {
    fn new(d: Arc<Data>, cap: u64) -> Books {
        Books {
            d,
            cap,
            used: 0,
            tick: 0,
        }
    }

    /// Whether one more value must evict first.
    fn full(&self) -> bool {
        self.used + self.d.value_len as u64 > self.cap
    }

    /// Blocks held.
    fn held(&self) -> u64 {
        self.used / self.d.value_len as u64
    }

    fn next_tick(&mut self) -> [u8; 8] {
        self.tick += 1;
        self.tick.to_be_bytes()
    }
}

// ---------------------------------------------------------------- LMDB

struct LmdbLru {
    env: Option<heed::Env>,
    data: heed::Database<Bytes, Bytes>,
    last: heed::Database<Bytes, Bytes>,
    lru: heed::Database<Bytes, Bytes>,
    b: Books,
}

impl LmdbLru {
    fn new(dir: &Path, d: Arc<Data>, cap: u64) -> Result<LmdbLru> {
        // SAFETY: the directory is ours alone. NO_SYNC: commits are not
        // fsync'd (the non-durable mode for churn).
        let env = unsafe {
            let mut o = heed::EnvOpenOptions::new();
            o.map_size(LMDB_MAP_SIZE).max_dbs(3);
            o.flags(heed::EnvFlags::NO_SYNC);
            o.open(dir)?
        };
        let mut w = env.write_txn()?;
        let data = env.create_database(&mut w, Some("data"))?;
        let last = env.create_database(&mut w, Some("last"))?;
        let lru = env.create_database(&mut w, Some("lru"))?;
        w.commit()?;
        Ok(LmdbLru {
            env: Some(env),
            data,
            last,
            lru,
            b: Books::new(d, cap),
        })
    }
}

impl Drop for LmdbLru {
    fn drop(&mut self) {
        if let Some(env) = self.env.take() {
            env.prepare_for_closing().wait();
        }
    }
}

impl Lru for LmdbLru {
    fn held(&self) -> Result<u64> {
        Ok(self.b.held())
    }

    fn read(&mut self, i: u64) -> Result<bool> {
        let env = self.env.as_ref().expect("LMDB env open until drop");
        let k = self.b.d.key(i);
        let mut w = env.write_txn()?;
        let hit = match self.data.get(&w, &k)? {
            Some(v) => {
                self.b.d.check(i, v)?;
                true
            }
            None => false,
        };
        if hit {
            let old: [u8; 8] = self
                .last
                .get(&w, &k)?
                .context("LMDB churn: no last-use row")?
                .try_into()?;
            self.lru.delete(&mut w, &old)?;
        } else {
            let v = self.b.d.value(i);
            self.b.d.check(i, &v)?;
            while self.b.full() {
                let (t, ek) = self.lru.first(&w)?.context("LMDB churn: LRU empty")?;
                let (t, ek) = (t.to_vec(), ek.to_vec());
                self.lru.delete(&mut w, &t)?;
                self.last.delete(&mut w, &ek)?;
                self.data.delete(&mut w, &ek)?;
                self.b.used -= self.b.d.value_len as u64;
            }
            self.data.put(&mut w, &k, &v)?;
            self.b.used += v.len() as u64;
        }
        let t = self.b.next_tick();
        self.lru.put(&mut w, &t, &k)?;
        self.last.put(&mut w, &k, &t)?;
        w.commit()?;
        Ok(hit)
    }
}

// ---------------------------------------------------------------- redb

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
const LAST: TableDefinition<&[u8], u64> = TableDefinition::new("last");
const LRU: TableDefinition<u64, &[u8]> = TableDefinition::new("lru");

struct RedbLru {
    db: redb::Database,
    b: Books,
}

impl RedbLru {
    fn new(dir: &Path, d: Arc<Data>, cap: u64) -> Result<RedbLru> {
        let db = redb::Database::create(dir.join("db.redb"))?;
        Ok(RedbLru {
            db,
            b: Books::new(d, cap),
        })
    }
}

impl Lru for RedbLru {
    fn held(&self) -> Result<u64> {
        Ok(self.b.held())
    }

    fn read(&mut self, i: u64) -> Result<bool> {
        let k = self.b.d.key(i);
        let mut w = self.db.begin_write()?;
        w.set_durability(redb::Durability::None)?;
        let hit;
        {
            let mut data = w.open_table(DATA)?;
            let mut last = w.open_table(LAST)?;
            let mut lru = w.open_table(LRU)?;
            hit = match data.get(&k[..])? {
                Some(v) => {
                    self.b.d.check(i, v.value())?;
                    true
                }
                None => false,
            };
            if hit {
                let old = last
                    .get(&k[..])?
                    .context("redb churn: no last-use row")?
                    .value();
                lru.remove(old)?;
            } else {
                let v = self.b.d.value(i);
                self.b.d.check(i, &v)?;
                while self.b.full() {
                    let (_, ek) = lru.pop_first()?.context("redb churn: LRU empty")?;
                    let ek = ek.value().to_vec();
                    last.remove(&ek[..])?;
                    data.remove(&ek[..])?;
                    self.b.used -= self.b.d.value_len as u64;
                }
                data.insert(&k[..], &v[..])?;
                self.b.used += v.len() as u64;
            }
            self.b.tick += 1;
            lru.insert(self.b.tick, &k[..])?;
            last.insert(&k[..], self.b.tick)?;
        }
        w.commit()?;
        Ok(hit)
    }
}

// ---------------------------------------------------------------- SQLite

struct SqliteLru {
    c: rusqlite::Connection,
    b: Books,
}

impl SqliteLru {
    fn new(dir: &Path, d: Arc<Data>, cap: u64) -> Result<SqliteLru> {
        let c = sqlite_conn(&dir.join("db.sqlite"), "OFF")?;
        c.execute_batch(
            "CREATE TABLE data (id INTEGER PRIMARY KEY, k BLOB UNIQUE NOT NULL, v BLOB NOT NULL);
             CREATE TABLE lru (k BLOB PRIMARY KEY NOT NULL, tick INTEGER NOT NULL) WITHOUT ROWID;
             CREATE INDEX lru_tick ON lru (tick);",
        )?;
        Ok(SqliteLru {
            c,
            b: Books::new(d, cap),
        })
    }
}

impl Lru for SqliteLru {
    fn held(&self) -> Result<u64> {
        Ok(self.b.held())
    }

    fn read(&mut self, i: u64) -> Result<bool> {
        let k = self.b.d.key(i);
        let c = &self.c;
        c.execute_batch("BEGIN IMMEDIATE")?;
        let hit = {
            let mut st = c.prepare_cached("SELECT v FROM data WHERE k = ?1")?;
            let mut rows = st.query([&k[..]])?;
            match rows.next()? {
                Some(row) => {
                    self.b.d.check(i, row.get_ref(0)?.as_blob()?)?;
                    true
                }
                None => false,
            }
        };
        self.b.tick += 1;
        let tick = self.b.tick as i64;
        if hit {
            c.prepare_cached("UPDATE lru SET tick = ?1 WHERE k = ?2")?
                .execute((tick, &k[..]))?;
        } else {
            let v = self.b.d.value(i);
            self.b.d.check(i, &v)?;
            while self.b.full() {
                let ek: Vec<u8> = c
                    .prepare_cached("SELECT k FROM lru ORDER BY tick LIMIT 1")?
                    .query_row([], |r| r.get(0))?;
                c.prepare_cached("DELETE FROM lru WHERE k = ?1")?
                    .execute([&ek[..]])?;
                c.prepare_cached("DELETE FROM data WHERE k = ?1")?
                    .execute([&ek[..]])?;
                self.b.used -= self.b.d.value_len as u64;
            }
            c.prepare_cached("INSERT INTO data (k, v) VALUES (?1, ?2)")?
                .execute((&k[..], &v[..]))?;
            c.prepare_cached("INSERT INTO lru (k, tick) VALUES (?1, ?2)")?
                .execute((&k[..], tick))?;
            self.b.used += v.len() as u64;
        }
        c.execute_batch("COMMIT")?;
        Ok(hit)
    }
}

// ---------------------------------------------------------------- fjall

struct FjallLru {
    db: fjall::Database,
    data: fjall::Keyspace,
    last: fjall::Keyspace,
    lru: fjall::Keyspace,
    /// No LRU row is older than this tick (eviction scans start here, so
    /// they do not walk the tombstones of rows already evicted).
    low: u64,
    b: Books,
}

impl FjallLru {
    fn new(dir: &Path, d: Arc<Data>, cap: u64) -> Result<FjallLru> {
        let db = fjall::Database::builder(dir)
            .cache_size(FJALL_CACHE)
            .open()?;
        let data = db.keyspace("data", fjall_value_opts)?;
        let last = db.keyspace("last", fjall::KeyspaceCreateOptions::default)?;
        let lru = db.keyspace("lru", fjall::KeyspaceCreateOptions::default)?;
        Ok(FjallLru {
            db,
            data,
            last,
            lru,
            low: 0,
            b: Books::new(d, cap),
        })
    }
}

impl Lru for FjallLru {
    fn held(&self) -> Result<u64> {
        Ok(self.b.held())
    }

    fn read(&mut self, i: u64) -> Result<bool> {
        let k = self.b.d.key(i);
        // No fsync: the batch goes to the OS (fjall's default durability).
        let mut batch = self.db.batch();
        let hit = match self.data.get(k)? {
            Some(v) => {
                self.b.d.check(i, &v)?;
                true
            }
            None => false,
        };
        if hit {
            let old = self.last.get(k)?.context("fjall churn: no last-use row")?;
            batch.remove(&self.lru, old);
        } else {
            let v = self.b.d.value(i);
            self.b.d.check(i, &v)?;
            while self.b.full() {
                let g = self
                    .lru
                    .range(self.low.to_be_bytes()..)
                    .next()
                    .context("fjall churn: LRU empty")?;
                let (t, ek) = g.into_inner()?;
                let tb: [u8; 8] = (&t[..]).try_into()?;
                self.low = u64::from_be_bytes(tb) + 1;
                batch.remove(&self.lru, t);
                batch.remove(&self.last, ek.clone());
                batch.remove(&self.data, ek);
                self.b.used -= self.b.d.value_len as u64;
            }
            batch.insert(&self.data, &k[..], v);
            self.b.used += self.b.d.value_len as u64;
        }
        let t = self.b.next_tick();
        batch.insert(&self.lru, &t[..], &k[..]);
        batch.insert(&self.last, &k[..], &t[..]);
        batch.commit()?;
        Ok(hit)
    }
}
