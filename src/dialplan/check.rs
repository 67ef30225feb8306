//! Whole-dialplan checks, each problem at its file:line:col with a fix hint: references to
//! unknown nodes, intents, slots, knowledge entries and flows; unreachable nodes; an `ask` with
//! no way out on silence or on not being understood; loops that never wait for the caller;
//! variables used but never set.

use std::collections::{BTreeSet, HashMap};

use super::error::{Problems, did_you_mean};
use super::model::{Dialplan, Ref};
use super::nodes::Node;
use super::read::variables;

/// Variables every call has.
pub const BUILTIN_VARIABLES: &[&str] = &[
    "intent",
    "utterance",
    "confidence",
    "digits",
    "caller_number",
    "caller_name",
    "turn",
    "kb_answer",
    "kb_id",
];

pub fn check(plan: &Dialplan, p: &mut Problems) {
    let node_ids = || plan.nodes.keys().map(String::as_str);
    let check_ref = |r: &Ref, p: &mut Problems| {
        if !plan.nodes.contains_key(&r.name) {
            p.add(
                r.pos,
                format!("unknown node `{}`", r.name),
                did_you_mean(&r.name, node_ids()),
            );
        }
    };
    let intent_names = || plan.intents.iter().map(|i| i.name.as_str());
    let check_intent = |name: &str, pos, p: &mut Problems| {
        if !plan.intents.iter().any(|i| i.name == name) {
            p.add(
                pos,
                format!("unknown intent `{name}`"),
                did_you_mean(name, intent_names()),
            );
        }
    };
    check_ref(&plan.start, p);
    let h = &plan.handlers;
    for r in [
        &h.agent,
        &h.goodbye,
        &h.angry,
        &h.no_input,
        &h.no_match,
        &h.max_turns,
    ]
    .into_iter()
    .flatten()
    {
        check_ref(r, p);
    }
    if let Some(r) = &h.agent {
        check_intent("agent", r.pos, p);
    }
    if let Some(r) = &h.goodbye {
        check_intent("goodbye", r.pos, p);
    }

    for node in plan.nodes.values() {
        if let Some(n) = &node.next {
            check_ref(n, p);
        }
        for t in node.kind.targets() {
            check_ref(&t, p);
        }
        if node.next.is_none() && !node.kind.always_jumps() {
            p.add(
                node.pos,
                format!("node `{}` ({}) needs `next`", node.id, node.kind.kind()),
                "where the call goes after it",
            );
        }
        match &node.kind {
            Node::Ask(a) => {
                for (i, pos) in &a.intents {
                    check_intent(i, *pos, p);
                }
                if let Some((slot, pos)) = &a.slot
                    && plan.slot(slot).is_none()
                {
                    p.add(
                        *pos,
                        format!("unknown slot `{slot}`"),
                        did_you_mean(slot, plan.slots.iter().map(|s| s.name.as_str())),
                    );
                }
                if a.no_input.is_empty() && a.fail.is_none() && h.no_input.is_none() {
                    p.add(node.pos, format!("ask `{}` has no no-input handling", node.id), "add `no_input: [reprompt...]` or `fail:`, or a global `handlers: no_input:`");
                }
                if a.no_match.is_empty() && a.fail.is_none() && h.no_match.is_none() {
                    p.add(node.pos, format!("ask `{}` has no no-match handling", node.id), "add `no_match: [reprompt...]` or `fail:`, or a global `handlers: no_match:`");
                }
            }
            Node::Route(r) => {
                for (i, pos, _) in &r.cases {
                    check_intent(i, *pos, p);
                }
            }
            Node::Answer(a) => {
                if let Some((id, pos)) = &a.entry
                    && !plan.knowledge.iter().any(|k| &k.id == id)
                {
                    p.add(
                        *pos,
                        format!("unknown knowledge entry `{id}`"),
                        did_you_mean(id, plan.knowledge.iter().map(|k| k.id.as_str())),
                    );
                }
            }
            Node::Call(c) if !plan.flows.contains_key(&c.flow) => {
                p.add(
                    c.pos,
                    format!("unknown flow `{}`", c.flow),
                    did_you_mean(&c.flow, plan.flows.keys().map(String::as_str)),
                );
            }
            _ => {}
        }
    }
    for (flow, start) in &plan.flows {
        if !plan.nodes.contains_key(start) {
            let pos = plan
                .nodes
                .values()
                .find(|n| n.id.starts_with(&format!("{flow}/")))
                .map(|n| n.pos)
                .unwrap_or_default();
            p.add(
                pos,
                format!("flow `{flow}` starts at unknown node `{start}`"),
                "",
            );
        }
    }
    if !p.list.is_empty() {
        return; // the graph checks below need every reference to resolve
    }
    check_reachable(plan, p);
    check_endless_loops(plan, p);
    check_variables(plan, p);
}

/// Where control can go from a node (calls enter their flow; `next` of a call is where the
/// flow's `return` lands).
fn successors(plan: &Dialplan, id: &str) -> Vec<String> {
    let Some(node) = plan.nodes.get(id) else {
        return Vec::new();
    };
    let mut out: Vec<String> = node.kind.targets().into_iter().map(|r| r.name).collect();
    if let Some(n) = &node.next {
        out.push(n.name.clone());
    }
    if let Node::Call(c) = &node.kind
        && let Some(start) = plan.flows.get(&c.flow)
    {
        out.push(start.clone());
    }
    out
}

fn check_reachable(plan: &Dialplan, p: &mut Problems) {
    let h = &plan.handlers;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stack: Vec<String> = [
        Some(&plan.start),
        h.agent.as_ref(),
        h.goodbye.as_ref(),
        h.angry.as_ref(),
        h.no_input.as_ref(),
        h.no_match.as_ref(),
        h.max_turns.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|r| r.name.clone())
    .collect();
    while let Some(id) = stack.pop() {
        if seen.insert(id.clone()) {
            stack.extend(successors(plan, &id));
        }
    }
    for node in plan.nodes.values() {
        if !seen.contains(&node.id) {
            p.add(
                node.pos,
                format!("node `{}` is unreachable", node.id),
                "nothing leads here from `start` or a handler; link it or delete it",
            );
        }
    }
}

/// A cycle through nodes that never wait for the caller would spin forever.
fn check_endless_loops(plan: &Dialplan, p: &mut Problems) {
    // Colour DFS over the non-waiting subgraph.
    let mut state: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        plan: &'a Dialplan,
        id: &'a str,
        state: &mut HashMap<&'a str, u8>,
        found: &mut Option<&'a str>,
    ) {
        state.insert(id, 1);
        for next in successors(plan, id) {
            let Some((key, node)) = plan.nodes.get_key_value(&next) else {
                continue;
            };
            if node.kind.waits_for_caller() {
                continue;
            }
            match state.get(key.as_str()) {
                Some(1) => {
                    found.get_or_insert(key.as_str());
                }
                Some(_) => {}
                None => visit(plan, key, state, found),
            }
        }
        state.insert(id, 2);
    }
    let mut reported = BTreeSet::new();
    for (id, node) in &plan.nodes {
        if node.kind.waits_for_caller() || state.contains_key(id.as_str()) {
            continue;
        }
        let mut found = None;
        visit(plan, id, &mut state, &mut found);
        if let Some(at) = found
            && reported.insert(at)
        {
            p.add(
                plan.nodes[at].pos,
                format!("node `{at}` is on a loop that never waits for the caller"),
                "put an `ask` in the loop, or a way out of it",
            );
        }
    }
}

fn check_variables(plan: &Dialplan, p: &mut Problems) {
    let mut defined: BTreeSet<String> = BUILTIN_VARIABLES.iter().map(|s| s.to_string()).collect();
    defined.extend(plan.vars.keys().cloned());
    defined.extend(plan.slots.iter().map(|s| s.name.clone()));
    for node in plan.nodes.values() {
        defined.extend(node.kind.sets());
    }
    let uses: Vec<(String, super::yaml::Pos)> = (plan.nodes.values())
        .flat_map(|node| node.kind.templates())
        .flat_map(|(t, pos)| variables(&t).into_iter().map(move |v| (v, pos)))
        .collect();
    for (v, pos) in uses {
        if !defined.contains(&v) {
            p.add(
                pos,
                format!("variable `{v}` is never set"),
                did_you_mean(&v, defined.iter().map(String::as_str)),
            );
        }
    }
}
