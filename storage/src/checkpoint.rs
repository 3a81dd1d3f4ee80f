//! The checkpoint file: the sequence number below which the owner no longer
//! needs records. Replaced atomically (write, sync, rename, sync directory).

use std::path::Path;

use crate::{
    error::{Error, Result, io_err},
    vfs::Vfs,
};

pub(crate) const FILE_NAME: &str = "checkpoint";
const TMP_NAME: &str = "checkpoint.tmp";
const MAGIC: [u8; 8] = *b"FRXCKPT\x01";
const BYTES: usize = 32;

fn encode(seq: u64) -> [u8; BYTES] {
    let mut out = [0u8; BYTES];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&out[..28]);
    out[28..32].copy_from_slice(&crc.to_le_bytes());
    out
}

pub(crate) fn decode(buf: &[u8]) -> Result<u64, &'static str> {
    if buf.len() != BYTES || buf[0..8] != MAGIC {
        return Err("not a checkpoint file");
    }
    let crc = u32::from_le_bytes([buf[28], buf[29], buf[30], buf[31]]);
    if crc != crc32fast::hash(&buf[..28]) || buf[16..28].iter().any(|&b| b != 0) {
        return Err("checkpoint file is damaged");
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&buf[8..16]);
    Ok(u64::from_le_bytes(seq))
}

/// Reads the checkpoint; 0 when none was ever written.
pub(crate) fn read(vfs: &dyn Vfs, dir: &Path) -> Result<u64> {
    let path = dir.join(FILE_NAME);
    if !vfs.list(dir).map_err(io_err("list", dir))?.iter().any(|n| n == FILE_NAME) {
        return Ok(0);
    }
    let file = vfs.open(&path).map_err(io_err("open", &path))?;
    let map = file.map().map_err(io_err("map", &path))?;
    decode(map.all()).map_err(|reason| Error::Corrupt { segment: path, offset: 0, seq: 0, reason })
}

/// Durably replaces the checkpoint with `seq`.
pub(crate) fn write(vfs: &dyn Vfs, dir: &Path, seq: u64) -> Result<()> {
    let tmp = dir.join(TMP_NAME);
    let path = dir.join(FILE_NAME);
    let result = (|| {
        let file = vfs.create(&tmp, BYTES as u64).map_err(io_err("create", &tmp))?;
        file.write_at(0, &encode(seq)).map_err(io_err("write", &tmp))?;
        file.sync().map_err(io_err("sync", &tmp))?;
        vfs.rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        vfs.sync_dir(dir).map_err(io_err("sync directory", dir))
    })();
    if result.is_err() {
        // Best effort: a leftover temporary file is also removed at open.
        let _ = vfs.remove(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        assert_eq!(decode(&encode(77)), Ok(77));
        let mut bad = encode(77);
        bad[9] ^= 4;
        assert!(decode(&bad).is_err());
        assert!(decode(&[0u8; 32]).is_err());
        assert!(decode(&[]).is_err());
    }
}
