//! dscache's workload: 100,000 JSON metadata documents of about 1-3 KiB,
//! keyed by UUID. Compares the size of a dfcache file (with a trained zstd
//! dictionary) against the `.tar.gz` of the same documents, and measures
//! random gets on one core.
//!
//! `cargo bench --bench docs [-- N]` (N documents, default 100000).

use std::io::Write;
use std::time::Instant;

use dfcache::{Flushable, OpenOptions};

/// A small, seeded PRNG (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn f(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
    fn uuid(&mut self) -> uuid::Uuid {
        uuid::Uuid::from_u64_pair(self.next(), self.next())
    }
}

const PRODUCTS: [&str; 6] = [
    "ga_ls8c_ard_3",
    "ga_ls9c_ard_3",
    "ga_s2am_ard_3",
    "ga_s2bm_ard_3",
    "ga_ls7e_ard_3",
    "ga_ls5t_ard_3",
];
const BANDS: [&str; 10] = [
    "nbart_blue",
    "nbart_green",
    "nbart_red",
    "nbart_nir",
    "nbart_swir_1",
    "nbart_swir_2",
    "oa_fmask",
    "oa_satellite_azimuth",
    "oa_solar_zenith",
    "oa_nbart_contiguity",
];

/// One dataset document, like the Open Data Cube metadata dscache stores.
fn doc(r: &mut Rng) -> (uuid::Uuid, String) {
    let id = r.uuid();
    let product = PRODUCTS[r.below(PRODUCTS.len() as u64) as usize];
    let (y, mo, d) = (2013 + r.below(10), 1 + r.below(12), 1 + r.below(28));
    let (h, mi, s) = (r.below(24), r.below(60), r.below(60));
    let x0 = r.f(100_000.0, 900_000.0).round();
    let y0 = r.f(-4_500_000.0, -1_000_000.0).round();
    let nbands = 3 + r.below(8) as usize;
    let mut measurements = String::new();
    for (i, b) in BANDS.iter().take(nbands).enumerate() {
        if i > 0 {
            measurements.push_str(", ");
        }
        measurements.push_str(&format!(
            r#""{b}": {{"path": "{product}_{:03}{:03}_{y}-{mo:02}-{d:02}_final_{b}.tif", "band": 1}}"#,
            r.below(200),
            r.below(150)
        ));
    }
    let mut lineage = String::new();
    for i in 0..r.below(3) {
        if i > 0 {
            lineage.push_str(", ");
        }
        lineage.push_str(&format!(r#""{}""#, r.uuid()));
    }
    let json = format!(
        r#"{{"$schema": "https://schemas.opendatacube.org/dataset", "id": "{id}", "label": "{product}_{:03}{:03}_{y}-{mo:02}-{d:02}_final", "product": {{"name": "{product}", "href": "https://collections.dea.ga.gov.au/product/{product}"}}, "crs": "epsg:32655", "geometry": {{"type": "Polygon", "coordinates": [[[{x0}, {y0}], [{}, {y0}], [{}, {}], [{x0}, {}], [{x0}, {y0}]]]}}, "grids": {{"default": {{"shape": [7811, 7681], "transform": [30.0, 0.0, {x0}, 0.0, -30.0, {y0}, 0.0, 0.0, 1.0]}}, "panchromatic": {{"shape": [15621, 15361], "transform": [15.0, 0.0, {x0}, 0.0, -15.0, {y0}, 0.0, 0.0, 1.0]}}}}, "properties": {{"datetime": "{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z", "eo:cloud_cover": {:.3}, "eo:gsd": 15.0, "eo:instrument": "OLI_TIRS", "eo:platform": "landsat-8", "eo:sun_azimuth": {:.6}, "eo:sun_elevation": {:.6}, "fmask:clear": {:.4}, "fmask:cloud": {:.4}, "gqa:abs_iterative_mean_xy": {:.3}, "landsat:collection_number": 1, "landsat:landsat_product_id": "LC08_L1TP_{:03}{:03}_{y}{mo:02}{d:02}_20170316_01_T1", "odc:dataset_version": "3.2.1", "odc:file_format": "GeoTIFF", "odc:processing_datetime": "2019-10-{:02}T{:02}:{:02}:00.{:06}Z", "odc:producer": "ga.gov.au", "odc:region_code": "{:03}{:03}"}}, "measurements": {{{measurements}}}, "lineage": {{"level1": [{lineage}]}}}}"#,
        r.below(200),
        r.below(150),
        x0 + 230_000.0,
        x0 + 230_000.0,
        y0 - 234_000.0,
        y0 - 234_000.0,
        r.below(1_000_000),
        r.f(0.0, 100.0),
        r.f(0.0, 360.0),
        r.f(0.0, 90.0),
        r.f(0.0, 100.0),
        r.f(0.0, 100.0),
        r.f(0.0, 1.0),
        r.below(200),
        r.below(150),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(1_000_000),
        r.below(200),
        r.below(150),
    );
    (id, json)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir_in(".").expect("temporary directory");
    let mut r = Rng(0x5EED_D0C5);
    let docs: Vec<(uuid::Uuid, String)> = (0..n).map(|_| doc(&mut r)).collect();
    let raw: usize = docs.iter().map(|(_, d)| d.len()).sum();
    let (min, max) = docs.iter().fold((usize::MAX, 0), |(a, b), (_, d)| {
        (a.min(d.len()), b.max(d.len()))
    });
    println!(
        "{n} documents, {:.1} MB, {min}..{max} bytes each",
        raw as f64 / 1e6
    );

    // The .tar.gz of the same documents, one file each.
    let files = dir.path().join("docs");
    std::fs::create_dir(&files).expect("docs directory");
    for (id, d) in &docs {
        let mut f = std::fs::File::create(files.join(format!("{id}.json"))).expect("document file");
        f.write_all(d.as_bytes()).expect("write document");
    }
    let tgz = dir.path().join("docs.tar.gz");
    let ok = std::process::Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&files)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(ok.success(), "tar failed");
    let tgz_len = std::fs::metadata(&tgz).expect("tar.gz").len();
    println!("tar.gz:            {:>10} bytes", tgz_len);

    for (level, dict_size) in [(3, 112 << 10), (19, 112 << 10)] {
        let path = dir.path().join(format!("docs-{level}.dfc"));
        let c = OpenOptions::new()
            .compression_level(Some(level))
            .create(&path, 0)
            .expect("create");
        let t = Instant::now();
        // Train on 2 % of the documents, as dscache did on samples per product.
        let samples: Vec<&[u8]> = docs.iter().step_by(50).map(|(_, d)| d.as_bytes()).collect();
        c.train_dictionary(&samples, dict_size).expect("train");
        let mut sorted: Vec<&(uuid::Uuid, String)> = docs.iter().collect();
        sorted.sort_by_key(|(id, _)| *id);
        c.put_many(sorted.iter().map(|(id, d)| (id.as_bytes(), d.as_bytes())))
            .expect("put_many");
        c.flush().expect("flush");
        let load = t.elapsed();
        let loaded = std::fs::metadata(&path).expect("file").len();
        let compact = dir.path().join(format!("docs-{level}.compact.dfc"));
        c.compact_to(&compact).expect("compact");
        let compact_len = std::fs::metadata(&compact).expect("file").len();
        drop(c);
        let c = OpenOptions::new().open(&compact).expect("open");
        let s = c.stats().expect("stats");
        let v = c.verify().expect("verify");
        // Every extent that is not a node page holds a value, except the
        // one dictionary.
        println!(
            "  values {} bytes stored, {} of them in extents",
            s.stored_bytes,
            v.extents.saturating_sub(v.nodes + 1)
        );
        for u in &v.indexes {
            println!(
                "  {:<20} {:>6} nodes, {:>6} leaves {:>3.0}% payload, {:>7} entries, {:>5.1} node bytes/entry",
                u.name,
                u.nodes,
                u.leaves,
                u.entry_bytes as f64 * 100.0 / (u.leaves.max(1) * 4096) as f64,
                u.entries,
                (u.nodes * 4096) as f64 / u.entries.max(1) as f64
            );
        }
        let gets = 1_000_000;
        let mut x = Rng(42);
        let t = Instant::now();
        let mut bytes = 0usize;
        for _ in 0..gets {
            let (id, d) = &docs[x.below(n as u64) as usize];
            let v = c.get(id.as_bytes()).expect("get").expect("present");
            assert_eq!(v.len(), d.len());
            bytes += crc32fast::hash(&v) as usize & 1;
        }
        let g = t.elapsed();
        println!(
            "dfcache zstd-{level:<2} dict {:>3} KiB: loaded {:>10} bytes, compacted {:>10} bytes = {:.2}x the tar.gz; load {:.1} s; {:.0} random gets/s on one core ({bytes})",
            dict_size >> 10,
            loaded,
            compact_len,
            compact_len as f64 / tgz_len as f64,
            load.as_secs_f64(),
            gets as f64 / g.as_secs_f64()
        );
    }
}
