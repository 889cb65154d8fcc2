//! On a trait method declaration the attribute cannot reach the implementations: the error
//! is at the `;` and says to annotate the method in each impl instead.

use resilient::timeout;
#[derive(Debug)]
enum ApiError {
    Resilience(resilient::Error),
}

impl From<resilient::Error> for ApiError {
    fn from(e: resilient::Error) -> Self {
        ApiError::Resilience(e)
    }
}

trait Profiles {
    #[timeout("1s")]
    async fn get(&self, id: u32) -> Result<String, ApiError>;
}

fn main() {}
