//! `sluice watch NS/NAME`: follows the release of the revision the target asks for to its end.
//!
//! Reads the Rollout once (already settled? done), then follows its event stream, resuming after
//! the last event seen whenever the stream drops, and re-reads the Rollout at each transition of
//! the followed release to show it. [`follow`] decides, [`render`] draws; this module only moves
//! bytes between them and the network.

pub mod follow;
pub mod render;

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use self::follow::{Decision, Follower, Outcome, settled};
use self::render::{header, live_view, outcome_line, plain_line, redraw};
use super::args::{Target, WatchArgs};
use super::client::{Api, Failure};
use super::sse::SseParser;
use crate::api::types::{RolloutDetail, TransitionView};

/// Wait before reconnecting a dropped stream, unless the server asks otherwise (`retry:`).
const BACKOFF: Duration = Duration::from_secs(1);
/// A stream silent this long, keep-alives included, is taken for dropped.
const IDLE: Duration = Duration::from_secs(60);

pub async fn watch(args: &WatchArgs) -> Result<Outcome, Failure> {
    let api = Api::new(&args.api)?;
    let deadline = args.timeout.map(|timeout| Instant::now() + timeout);
    let Some(first) = until(deadline, api.detail::<RolloutDetail>(&args.target)).await else {
        eprintln!("{}: timed out reading the Rollout", args.target);
        return Ok(Outcome::TimedOut);
    };
    let first = first?;
    let revision = revision_to_follow(args, &first)?;
    let mut screen = Screen::new();
    if let Some(outcome) = settled(&first.summary, &revision) {
        screen.line(&outcome_line(
            &args.target,
            &revision,
            outcome,
            &first,
            None,
        ));
        return Ok(outcome);
    }
    let mut watch = Watch::start(api, args.target.clone(), &revision, first, screen);
    let outcome = until(deadline, watch.follow())
        .await
        .unwrap_or(Ok(Outcome::TimedOut))?;
    let last = outcome_line(
        &args.target,
        &revision,
        outcome,
        &watch.detail,
        args.timeout,
    );
    watch.screen.line(&last);
    Ok(outcome)
}

/// `--revision`, or the one the target asks for now.
fn revision_to_follow(args: &WatchArgs, detail: &RolloutDetail) -> Result<String, Failure> {
    args.revision
        .clone()
        .or_else(|| detail.summary.target_revision.clone())
        .ok_or_else(|| Failure::Api {
            status: 200,
            code: "no_target_revision".to_string(),
            message: format!(
                "{} reports no target revision (phase {}): give --revision",
                args.target, detail.summary.phase
            ),
        })
}

/// The future's output, or None once the deadline (if any) has passed.
async fn until<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, future).await.ok(),
        None => Some(future.await),
    }
}

/// One watch in progress.
struct Watch {
    api: Api,
    target: Target,
    follower: Follower,
    /// The Rollout as last read.
    detail: RolloutDetail,
    /// The id of the last event seen, sent as `Last-Event-ID`.
    resume: Option<String>,
    backoff: Duration,
    screen: Screen,
}

impl Watch {
    /// Shows what is known so far: the followed release's transitions in the history.
    fn start(
        api: Api,
        target: Target,
        revision: &str,
        detail: RolloutDetail,
        mut screen: Screen,
    ) -> Self {
        let mut follower = Follower::new(revision);
        follower.seed(&detail.history);
        // The transitions of the followed release so far, if it has begun.
        let so_far: Vec<&TransitionView> = detail
            .history
            .iter()
            .filter(|transition| transition.revision.as_deref() == Some(revision))
            .filter(|transition| Some(transition.release) == follower.release())
            .collect();
        if screen.live {
            screen.show(&target, revision, &detail, so_far.last().copied());
        } else {
            screen.line(&header(&target, revision, &detail));
            for transition in &so_far {
                screen.show(&target, revision, &detail, Some(transition));
            }
        }
        // Resume after the history: nothing between the read and the stream is missed.
        let resume = detail.history.iter().map(|transition| transition.seq).max();
        Watch {
            api,
            target,
            follower,
            detail,
            resume: resume.map(|seq| seq.to_string()),
            backoff: BACKOFF,
            screen,
        }
    }

    /// Follows the stream, reconnecting when it drops, until the release ends.
    async fn follow(&mut self) -> Result<Outcome, Failure> {
        loop {
            let why = match self.stream().await {
                Ok(StreamEnd::Outcome(outcome)) => return Ok(outcome),
                Ok(StreamEnd::Closed) => "the event stream ended".to_string(),
                Ok(StreamEnd::Broke(detail)) => format!("the event stream broke: {detail}"),
                Ok(StreamEnd::Silent) => {
                    format!("the event stream was silent for {}s", IDLE.as_secs())
                }
                Err(Failure::Connect { detail, .. }) => format!("event stream: {detail}"),
                Err(failure) => return Err(failure),
            };
            self.screen.note(&format!("{why}; reconnecting"));
            tokio::time::sleep(self.backoff).await;
        }
    }

    /// One connection of the event stream, until the release ends or the stream does.
    async fn stream(&mut self) -> Result<StreamEnd, Failure> {
        let response = self
            .api
            .events(&self.target, self.resume.as_deref())
            .await?;
        let mut body = response.bytes_stream();
        let mut parser = SseParser::new();
        loop {
            let chunk = match tokio::time::timeout(IDLE, body.next()).await {
                Ok(Some(Ok(chunk))) => chunk,
                Ok(Some(Err(err))) => return Ok(StreamEnd::Broke(err.to_string())),
                Ok(None) => return Ok(StreamEnd::Closed),
                Err(_) => return Ok(StreamEnd::Silent),
            };
            for event in parser.feed(&chunk) {
                if !event.id.is_empty() {
                    self.resume = Some(event.id.clone());
                }
                if event.event != "transition" {
                    continue;
                }
                if let Some(outcome) = self.on_transition(&event.data).await? {
                    return Ok(StreamEnd::Outcome(outcome));
                }
            }
            self.backoff = parser.retry().unwrap_or(self.backoff);
        }
    }

    async fn on_transition(&mut self, data: &str) -> Result<Option<Outcome>, Failure> {
        let transition: TransitionView = match serde_json::from_str(data) {
            Ok(transition) => transition,
            Err(err) => {
                self.screen
                    .note(&format!("warning: skipped an unreadable transition: {err}"));
                return Ok(None);
            }
        };
        let decision = self.follower.observe(&transition);
        if decision == Decision::Ignore {
            return Ok(None);
        }
        match self.api.detail(&self.target).await {
            Ok(detail) => self.detail = detail,
            // Shown with the Rollout as last read; the stream itself says when it breaks.
            Err(Failure::Connect { .. }) => {}
            Err(failure) => return Err(failure),
        }
        let revision = self.follower.revision().to_string();
        self.screen
            .show(&self.target, &revision, &self.detail, Some(&transition));
        Ok(match decision {
            Decision::Exit(outcome) => Some(outcome),
            Decision::Continue | Decision::Ignore => None,
        })
    }
}

/// How one connection of the event stream ended.
enum StreamEnd {
    /// The followed release ended.
    Outcome(Outcome),
    /// The server closed the stream.
    Closed,
    /// The connection broke mid-stream.
    Broke(String),
    /// Nothing came, not even a keep-alive, for [`IDLE`].
    Silent,
}

/// Where the watch is shown: a live view on a terminal, plain lines otherwise.
struct Screen {
    live: bool,
    /// Lines of the live view on screen, just above the cursor.
    drawn: usize,
}

impl Screen {
    fn new() -> Self {
        let dumb = std::env::var("TERM").is_ok_and(|term| term == "dumb");
        Screen {
            live: std::io::stdout().is_terminal() && !dumb,
            drawn: 0,
        }
    }

    fn show(
        &mut self,
        target: &Target,
        revision: &str,
        detail: &RolloutDetail,
        transition: Option<&TransitionView>,
    ) {
        let mut stdout = std::io::stdout().lock();
        // A closed stdout leaves nothing to show; the exit code still tells the outcome.
        if self.live {
            let view = live_view(target, revision, detail, transition);
            let _ = write!(stdout, "{}", redraw(self.drawn, &view));
            self.drawn = view.lines().count();
        } else if let Some(transition) = transition {
            let line = plain_line(transition, detail.summary.step_count);
            let _ = writeln!(stdout, "{line}");
        }
        let _ = stdout.flush();
    }

    /// A line below the view, on stdout; the next view is drawn under it.
    fn line(&mut self, text: &str) {
        println!("{text}");
        self.drawn = 0;
    }

    /// A note on stderr; the next view is drawn under it.
    fn note(&mut self, text: &str) {
        eprintln!("{text}");
        self.drawn = 0;
    }
}
