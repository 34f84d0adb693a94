//! X12 5010 toolkit for billd: reads, validates and writes the HIPAA
//! transactions a billing office exchanges with payers.
