//! Membership churn in the simulation: the leader changes the members at
//! random, and nodes whose removal committed are retired for good.

use crate::Sim;
use raft_core::{ConfChange, NodeId, Rng};

impl Sim {
    /// The leader proposes a random membership change that keeps between
    /// three and five voters (fewer only when the cluster started so).
    pub(crate) fn change_membership(&mut self) -> Result<(), String> {
        let Some(l) = self.leader() else {
            return Ok(());
        };
        let conf = self.nodes[&l]
            .raft
            .as_ref()
            .expect("leader is live")
            .membership()
            .1
            .clone();
        let voters: Vec<NodeId> = conf.voters.iter().copied().collect();
        let learners: Vec<NodeId> = conf.learners.iter().copied().collect();
        let min = self.cfg.nodes.min(3);
        // Retired ids are never reused: a new machine gets a new id, as a
        // node that lost its disk must (its old self may have voted).
        let fresh = self.ids.len() as NodeId + 1;
        let choose = |v: &[NodeId], rng: &mut Rng| v[rng.range(0, v.len() as u64) as usize];
        let change = match self.rng.range(0, 6) {
            0 | 1 if conf.members().len() < 6 => ConfChange::AddLearner {
                id: fresh,
                address: format!("n{fresh}"),
            },
            2 if !learners.is_empty() && voters.len() < 5 => {
                let id = choose(&learners, &mut self.rng);
                ConfChange::AddVoter {
                    id,
                    address: format!("n{id}"),
                }
            }
            3 if voters.len() > min => ConfChange::Remove {
                id: choose(&voters, &mut self.rng),
            },
            4 if voters.len() > min => {
                let id = choose(&voters, &mut self.rng);
                ConfChange::AddLearner {
                    id,
                    address: format!("n{id}"),
                }
            }
            _ if !learners.is_empty() => ConfChange::Remove {
                id: choose(&learners, &mut self.rng),
            },
            _ => return Ok(()),
        };
        let r = self.raft_mut(l).expect("leader is live");
        let proposed = r.propose_conf_change(std::slice::from_ref(&change));
        if self.cfg.trace {
            eprintln!("t={} node {l} proposes {change:?}: {proposed:?}", self.now);
        }
        if proposed.is_ok()
            && let ConfChange::AddLearner { id, .. } = change
            && id == fresh
        {
            // A new machine joining: it starts from the cluster's
            // configuration as the leader has it now.
            let (index, conf) = self.nodes[&l].raft.as_ref().expect("leader").membership();
            let base = (index, conf.clone());
            self.add_node(id, base);
            self.process(id)?;
        }
        self.process(l)
    }

    /// Once a committed configuration has removed a node, the operator
    /// retires it: it is stopped for good.
    pub(crate) fn retire_removed(&mut self) {
        let gone: Vec<NodeId> = (self.checker.removed().iter().copied())
            .filter(|id| !self.retired.contains(id))
            .collect();
        for id in gone {
            if self.cfg.trace {
                eprintln!("t={} RETIRE node {id}", self.now);
            }
            self.crash(id);
            self.retired.insert(id);
        }
    }
}
