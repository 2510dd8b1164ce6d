//! A shared HTTP cache (RFC 9111, RFC 5861) as Tower middleware.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

pub mod directives;
pub mod freshness;
