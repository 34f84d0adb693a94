//! Helpers shared by billd's end-to-end tests: locating the built binary,
//! temporary configurations and loopback servers.
