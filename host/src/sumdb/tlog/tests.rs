//! x/mod's tlog test vectors, and the log's own algebra checked over every small tree.

use super::*;
use crate::sumdb::tile::{Tile, hash_from_tile, tile_for_index, tile_indexes};

fn b64(h: Hash) -> String {
    h.to_string()
}

/// A log in memory: the stored hashes of records `"leaf 0"`, `"leaf 1"`, ….
fn log_of(n: i64) -> Vec<Hash> {
    let mut stored: Vec<Hash> = Vec::new();
    for i in 0..n {
        let h = record_hash(format!("leaf {i}").as_bytes());
        let snapshot = stored.clone();
        let mut reader = |idx: &[i64]| -> Result<Vec<Hash>, Error> {
            Ok(idx.iter().map(|&x| snapshot[x as usize]).collect())
        };
        let new = stored_hashes_for_record_hash(i, h, &mut reader).expect("append");
        assert_eq!(
            stored.len() as i64,
            stored_hash_index(0, i),
            "appends at record {i}"
        );
        stored.extend(new);
    }
    assert_eq!(stored.len() as i64, stored_hash_count(n));
    stored
}

fn reader(stored: &[Hash]) -> impl FnMut(&[i64]) -> Result<Vec<Hash>, Error> + '_ {
    move |idx: &[i64]| Ok(idx.iter().map(|&x| stored[x as usize]).collect())
}

/// RFC 6962's definition, straight from the leaves: split at the largest power of two below n.
fn reference_hash(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Hash::default(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(reference_hash(&leaves[..k]), reference_hash(&leaves[k..]))
        }
    }
}

#[test]
fn hashes_and_texts_match_x_mod() {
    assert_eq!(
        b64(record_hash(b"")),
        "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0="
    );
    let tree = Tree {
        n: 123_456_789_012,
        hash: record_hash(b"hello world"),
    };
    let text = format_tree(tree);
    assert_eq!(
        text,
        "go.sum database tree\n123456789012\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n"
    );
    assert_eq!(parse_tree(text.as_bytes()), Ok(tree));
    assert_eq!(
        parse_tree(format!("{text}extra line\n").as_bytes()),
        Ok(tree)
    );
    for bad in [
        "go.sum database tree\n0123\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n-1\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
        "go.sum database tree\n1\nnot base64\n",
        "go.sum database tree\n1\n",
        "another tree\n1\nTszzRgjTG6xce+z2AG31kAXYKBgQVtCSCE40HmuwBb0=\n",
    ] {
        assert!(parse_tree(bad.as_bytes()).is_err(), "{bad:?}");
    }
    let record = format_record(123_456_789_012, b"hello, world\n").expect("record");
    assert_eq!(record, b"123456789012\nhello, world\n\n");
    let mut msg = record.clone();
    msg.extend_from_slice(b"go.sum database tree\n");
    let (id, text, rest) = parse_record(&msg).expect("parse");
    assert_eq!(
        (id, text, rest),
        (
            123_456_789_012,
            &b"hello, world\n"[..],
            &b"go.sum database tree\n"[..]
        )
    );
    for bad in [
        &b"hello, world"[..],
        b"hello, world\n\n",
        b"hello\x01world\n",
        b"\xff\n",
    ] {
        assert!(format_record(1, bad).is_err(), "{bad:?}");
    }
}

#[test]
fn stored_hash_indexes_match_x_mod() {
    assert_eq!(stored_hash_index(0, 2), 3);
    assert_eq!(stored_hash_index(2, 1), 13);
    assert_eq!(stored_hash_index(8, 0), 510);
    assert_eq!(stored_hash_index(0, 256), 511);
    assert_eq!(stored_hash_count(300), 596);
    for index in 0..5000 {
        let (level, n) = split_stored_hash_index(index);
        assert_eq!(stored_hash_index(level, n), index, "{index}");
    }
}

#[test]
fn tree_hashes_match_x_mod() {
    // Computed with x/mod v0.43.0 over records "leaf i" (the research notes' e2e vectors).
    let stored = log_of(300);
    for (n, want) in [
        (1, "G7l9zCFjXUfiZj79/QoXRobZjdcBNS3SzQbotD/T0wU="),
        (2, "/F9riP+FVPdbsvnm85wxsZNtRLaSdu33sSBalVuXYeM="),
        (3, "1Pksj7uJcg6ztVZ3x9fvrd/rENEaGoSguo8aIzN/qpU="),
        (7, "WmH8K1T5z6cXdPJDIUPdQMbLKxGUf69lp9PaXLZRmcg="),
        (256, "z17/2xHQknou31Ow5zx4N/ZZQU4AU32l2Q61xMSf8nQ="),
        (300, "56/ILTiUT8eTBUUygJHUWCMojB9zTL2sBjlnE+vUtdU="),
    ] {
        let got = tree_hash(n, &mut reader(&stored)).expect("hash");
        assert_eq!(b64(got), want, "{n}");
    }
    let proof = prove_record(7, 3, &mut reader(&stored)).expect("proof");
    let prefixes: Vec<String> = proof.iter().map(|h| b64(*h)[..8].to_string()).collect();
    assert_eq!(prefixes, ["qze6NNHf", "/F9riP+F", "AVcbVXvH"]);
}

#[test]
fn proofs_hold_for_every_small_tree_and_fail_when_tampered() {
    let size = 70;
    let stored = log_of(size);
    let leaves: Vec<Hash> = (0..size)
        .map(|i| record_hash(format!("leaf {i}").as_bytes()))
        .collect();
    for t in 1..=size {
        let th = tree_hash(t, &mut reader(&stored)).expect("hash");
        assert_eq!(th, reference_hash(&leaves[..t as usize]), "tree {t}");
        for n in 0..t {
            let p = prove_record(t, n, &mut reader(&stored)).expect("prove");
            check_record(&p, t, th, n, leaves[n as usize]).expect("check");
            if let Some(first) = p.first() {
                let mut bad = p.clone();
                bad[0] = node_hash(*first, *first);
                assert_eq!(
                    check_record(&bad, t, th, n, leaves[n as usize]),
                    Err(Error::ProofFailed)
                );
            }
            if t > 1 {
                let wrong = leaves[(n as usize + 1) % t as usize];
                assert!(check_record(&p, t, th, n, wrong).is_err());
            }
        }
        for n in 1..=t {
            let h = tree_hash(n, &mut reader(&stored)).expect("hash");
            let p = prove_tree(t, n, &mut reader(&stored)).expect("prove tree");
            check_tree(&p, t, th, n, h).expect("check tree");
            if n < t {
                // A fork: another old tree of the same size is not a prefix.
                let forged = node_hash(h, h);
                assert!(check_tree(&p, t, th, n, forged).is_err(), "{t} {n}");
            }
        }
    }
}

#[test]
fn tiles_hold_the_stored_hashes() {
    let stored = log_of(100);
    let h = 2;
    let mut checked = 0;
    for index in 0..stored.len() as i64 {
        let (tile, _, _) = tile_for_index(h, index);
        // The complete tile's data, as a server serves it from its stored hashes.
        let full = Tile { w: 1 << h, ..tile };
        let indexes = tile_indexes(full);
        if indexes.iter().any(|&x| x as usize >= stored.len()) {
            continue; // a tile the log has not completed
        }
        let data: Vec<u8> = indexes.iter().flat_map(|&x| stored[x as usize].0).collect();
        let got = hash_from_tile(full, &data, index).expect("hash from tile");
        assert_eq!(
            got,
            stored[index as usize],
            "index {index} in {}",
            full.path()
        );
        checked += 1;
    }
    assert!(checked > 150, "{checked}");
}
