//! flexsync: declarative assignment of Autodesk Flex products to team members.
pub mod sandbox;
