//! `scheduled-reports` Lambda: wiring only; the behaviour lives in `shared`.

use lambda_runtime::{LambdaEvent, service_fn};
use shared::handlers::{App, Function};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let app = App::from_env(Function::ScheduledReports).await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| app.handle(event.payload))).await
}
