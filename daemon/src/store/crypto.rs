//! Sealing of stored values under the practice's store key (AEAD).
