//! The demo's timeline: what the grid and the scripted viewer do, round after round, so a newcomer
//! sees a realistic mix of traffic (cap calls, chat, a teleport now and then, a region crossing).
//!
//! Owns the order of steps only; the grid and the viewer do the work.

use std::time::Duration;

use super::viewer::{Running, Viewer};
use super::MockGridHandle;

/// What happened in one step, for the demo's friendly output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The viewer called its caps; `failed` of them failed.
    Activity { round: u64, failed: usize },
    /// A group chat line was sent.
    Chat { text: String },
    /// The agent was teleported to a region.
    Teleport { region: String },
    /// The agent walked into a region.
    Crossing { region: String },
    /// A step could not run.
    Skipped { why: String },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Activity { round, failed: 0 } => write!(
                f,
                "round {round}: inventory, display names, features, object costs, a texture, an upload"
            ),
            Step::Activity { round, failed } => {
                write!(f, "round {round}: cap calls done, {failed} failed")
            }
            Step::Chat { text } => write!(f, "the grid sends a group chat line: {text:?}"),
            Step::Teleport { region } => write!(f, "the grid teleports the avatar to {region}"),
            Step::Crossing { region } => write!(f, "the avatar walks into {region}"),
            Step::Skipped { why } => write!(f, "skipped a step: {why}"),
        }
    }
}

const CHAT_LINES: [&str; 4] = [
    "Hello from the capscope mock grid!",
    "Anyone up for a sandbox build?",
    "Caps are just HTTPS, and capscope shows them all.",
    "Teleporting now and then to show new seeds.",
];

/// Runs the timeline: an activity round every `every`, then in turn a chat line, a teleport, a chat
/// line and a crossing. Stops after `rounds` rounds (or never), reporting each step to `report`.
pub async fn run(
    grid: &MockGridHandle,
    viewer: &Viewer,
    running: &Running,
    every: Duration,
    rounds: Option<u64>,
    mut report: impl FnMut(Step),
) {
    let mut round = 0u64;
    loop {
        if rounds.is_some_and(|n| round >= n) {
            return;
        }
        round += 1;
        let failed = viewer.activity_round(running.login.inventory_root).await;
        report(Step::Activity { round, failed });
        let here = grid.current_region().unwrap_or(0);
        let next = (here + 1) % grid.regions.len();
        let name = grid.regions[next].name.clone();
        let step = match round % 4 {
            1 | 3 => {
                let text = CHAT_LINES[(round as usize / 2) % CHAT_LINES.len()].to_owned();
                grid.send_group_chat("Grid Greeter", &text)
                    .map(|()| Step::Chat { text })
            }
            2 => grid
                .trigger_teleport(next)
                .map(|()| Step::Teleport { region: name }),
            _ => grid
                .trigger_crossing(next)
                .map(|()| Step::Crossing { region: name }),
        };
        report(step.unwrap_or_else(|e| Step::Skipped { why: e.to_string() }));
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mockgrid::viewer::ViewerConfig;
    use crate::mockgrid::{MockGrid, MockGridConfig};

    #[tokio::test]
    async fn four_rounds_chat_teleport_and_cross() {
        let grid = MockGrid::start(MockGridConfig::for_tests()).await.unwrap();
        let viewer = Viewer::new(ViewerConfig::new(
            grid.login_url.clone(),
            grid.ca_pem.clone(),
        ))
        .unwrap();
        let running = viewer.start().await.unwrap();
        let mut steps = Vec::new();
        run(&grid, &viewer, &running, Duration::ZERO, Some(4), |s| {
            steps.push(s)
        })
        .await;
        assert!(
            steps.contains(&Step::Activity {
                round: 4,
                failed: 0
            }),
            "{steps:?}"
        );
        assert!(steps.iter().any(|s| matches!(s, Step::Teleport { .. })));
        assert!(steps.iter().any(|s| matches!(s, Step::Crossing { .. })));
        assert_eq!(grid.current_region(), Some(2));
        assert!(
            viewer
                .wait_until(Duration::from_secs(20), |j| j.region_switches.len() == 2)
                .await
        );
    }
}
