//! The default [`super::RawStore`]: sled 0.34.7 on a local directory.
