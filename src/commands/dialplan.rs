//! `voxnav simulate`, `test` and `demo-orders`: the dialplan without a phone.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use voxnav::models::ModelPaths;

#[derive(Args)]
pub struct SimulateArgs {
    file: PathBuf,
    #[arg(long)]
    json: bool,
    /// Start the built-in demo order service and point `orders_api` at it.
    #[arg(long)]
    demo_orders: bool,
    /// Set a dialplan variable, NAME=VALUE (repeatable).
    #[arg(long = "set", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

#[derive(Args)]
pub struct TestArgs {
    path: PathBuf,
    /// Start the built-in demo order service and point `orders_api` at it.
    #[arg(long)]
    demo_orders: bool,
    #[arg(long = "set", value_name = "NAME=VALUE")]
    vars: Vec<String>,
}

/// `NAME=VALUE` settings, plus the demo order service's address when it is started.
pub fn parse_vars(list: &[String], demo_orders: bool) -> Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for v in list {
        let (k, val) = v
            .split_once('=')
            .with_context(|| format!("--set {v}: expected NAME=VALUE"))?;
        vars.insert(k.to_string(), val.to_string());
    }
    if demo_orders {
        voxnav::dialplan::cli::start_demo_orders(&mut vars)?;
    }
    Ok(vars)
}

pub fn simulate(paths: &ModelPaths, args: SimulateArgs) -> Result<()> {
    let vars = parse_vars(&args.vars, args.demo_orders)?;
    let embedder = voxnav::dialplan::cli::embedder(paths)?;
    let hotline = voxnav::dialplan::cli::hotline(&args.file, embedder)?;
    voxnav::dialplan::cli::simulate(hotline, vars, args.json)
}

pub fn test(paths: &ModelPaths, args: TestArgs) -> Result<()> {
    let vars = parse_vars(&args.vars, args.demo_orders)?;
    let embedder = voxnav::dialplan::cli::embedder(paths)?;
    if !voxnav::dialplan::cli::test(&args.path, embedder, vars)? {
        std::process::exit(1);
    }
    Ok(())
}

pub fn demo_orders(listen: &str) -> Result<()> {
    let addr = voxnav::net::http::spawn_demo_orders(listen, std::time::Duration::ZERO)?;
    println!("voxnav: demo order service on http://{addr}/orders/NUMBER");
    loop {
        std::thread::park();
    }
}
