//! The attributes apply to functions only: on any other item the error says so, once for the
//! whole stack.

use resilient::circuit_breaker;

#[circuit_breaker]
#[resilient::timeout("1s")]
struct Client;

fn main() {}
