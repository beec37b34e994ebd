//! vigil-media: everything between a camera and the disk.
//!
//! - [`ingest`] pulls RTSP streams (retina) and turns them into frames with wall-clock times.
//! - [`gop`] groups frames into GOPs and rebuilds decode times for B-frame sources.
//! - [`fmp4`] writes fragmented MP4 (mp4-atom): one init per parameter set, one fragment per GOP.
//! - [`store`] owns the data directory: segment files, the SQLite index, crash recovery.
//! - [`datadir_lock`] keeps a second process from recording into a data directory in use.
//! - [`retention`] deletes old video by age, bytes and free space.
//! - [`reserve`] keeps preallocated room so freeing space works on a full volume.
//! - [`recorder`] runs one camera end to end and reports its status.
//! - [`live`] fans a camera's frames out to live viewers as one-frame fMP4 fragments.
//! - [`export`] plans which recorded bytes a time range is made of.
//! - [`progressive`] lays recorded fragments out as one progressive MP4 (the plain export).
//! - [`seek_index`] indexes a run of recorded GOPs for players (`sidx`) from the database rows.

pub mod counters;
pub mod datadir_lock;
pub mod evidence;
pub mod export;
pub mod fmp4;
pub mod gop;
pub mod ingest;
pub mod ingest_tls;
pub mod live;
pub mod progressive;
pub mod recorder;
pub mod reserve;
pub mod retention;
pub mod secrets;
pub mod seek_index;
pub mod store;
pub mod time;
