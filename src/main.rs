#[tokio::main]
async fn main() -> std::process::ExitCode {
    coupond::cli::run().await
}
