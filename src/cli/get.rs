//! `sluice get [NS/NAME] [-n NS] [-o table|json|yaml]`.

use serde::de::DeserializeOwned;

use super::args::{GetArgs, Output};
use super::client::{Api, Failure};
use super::detail::detail_text;
use super::table::rollout_table;
use crate::api::types::{RolloutDetail, RolloutList};

pub async fn get(args: &GetArgs) -> Result<(), Failure> {
    let api = Api::new(&args.api)?;
    // JSON and YAML print what the API sent, fields this CLI does not know included.
    let answer = match &args.target {
        Some(target) => api.detail_json(target).await?,
        None => api.list(args.namespace.as_deref()).await?,
    };
    let text = match args.output {
        Output::Json => pretty_json(&answer)?,
        Output::Yaml => serde_saphyr::to_string(&answer).map_err(|err| unreadable(&err))?,
        Output::Table if args.target.is_some() => detail_text(&typed::<RolloutDetail>(answer)?),
        Output::Table => {
            let list = typed::<RolloutList>(answer)?;
            if list.items.is_empty() {
                eprintln!("No rollouts found.");
                return Ok(());
            }
            rollout_table(&list)
        }
    };
    print!("{text}");
    Ok(())
}

fn pretty_json(answer: &serde_json::Value) -> Result<String, Failure> {
    let mut text = serde_json::to_string_pretty(answer).map_err(|err| unreadable(&err))?;
    text.push('\n');
    Ok(text)
}

fn typed<T: DeserializeOwned>(answer: serde_json::Value) -> Result<T, Failure> {
    serde_json::from_value(answer).map_err(|err| unreadable(&err))
}

fn unreadable(err: &dyn std::error::Error) -> Failure {
    Failure::Api {
        status: 200,
        code: "unreadable_answer".to_string(),
        message: format!("the API's answer cannot be read: {err}"),
    }
}
