//! beacon-core: the contracts every Beacon component shares, with no I/O.

pub mod region;

pub use region::Region;
