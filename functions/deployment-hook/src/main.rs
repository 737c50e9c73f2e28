//! `deployment-hook` Lambda: wiring only; the behaviour is `shared::flows::hook`.
//! Returns the hook response ECS documents (`hookStatus`, …), not the Outcome
//! (which `flows::handle` logs as the decision line).

use lambda_runtime::{LambdaEvent, service_fn};
use shared::context::App;
use shared::flows::hook::FLOW;
use shared::invocation::Invocation;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init_logging();
    let app = App::from_env(FLOW.function).await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        shared::flows::hook::answer(app, event.payload, Invocation::from_lambda(&event.context))
    }))
    .await
}
