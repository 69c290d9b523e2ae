//! A span-aware YAML tree, built from saphyr-parser events: the only place
//! that reads YAML text. Every node keeps the line and column it started at,
//! so every later error (type, unknown key, semantic) can point at it.
//!
//! Why not serde_yaml directly: it stops at the first error, exposes no
//! positions for semantic checks, and interprets scalars before `${VAR}`
//! could be replaced in them (`${VAR}` must be replaced before a scalar is typed).

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle};

use super::error::{ConfigError, Pos};

/// One YAML node and where it starts in the file.
#[derive(Debug, Clone)]
pub struct Node {
    pub pos: Pos,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// `plain` scalars are resolved (null, bool, int, float) when read;
    /// quoted and block scalars are always strings.
    Scalar {
        value: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The scalar text of a key (keys are compared as text).
    pub fn key_text(&self) -> &str {
        match &self.kind {
            Kind::Scalar { value, .. } => value,
            _ => "",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true } if is_null_text(value))
    }

    /// Finds the node at a path like `routes[2].upstream`; on a missing
    /// step, the deepest node that exists (the enclosing mapping).
    pub fn locate(&self, path: &str) -> Pos {
        let mut node = self;
        for step in path_steps(path) {
            let next = match (&node.kind, step) {
                (Kind::Map(entries), Step::Key(k)) => entries
                    .iter()
                    .find(|(key, _)| key.key_text() == k)
                    .map(|(_, v)| v),
                (Kind::Seq(items), Step::Index(i)) => items.get(i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.pos
    }
}

pub fn is_null_text(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn path_steps(path: &str) -> impl Iterator<Item = Step<'_>> {
    path.split('.').filter(|s| !s.is_empty()).flat_map(|part| {
        let (key, rest) = part.split_once('[').unwrap_or((part, ""));
        let indexes = rest
            .split('[')
            .filter_map(|i| i.trim_end_matches(']').parse().ok())
            .map(Step::Index);
        (!key.is_empty())
            .then_some(Step::Key(key))
            .into_iter()
            .chain(indexes.collect::<Vec<_>>())
    })
}

/// Parses one YAML document into a tree. An empty file is an empty mapping.
pub fn parse(text: &str) -> Result<Node, ConfigError> {
    let mut builder = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        expanded: 0,
        root: None,
    };
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let m = e.marker();
            let at = Pos::new(m.line(), m.col() + 1);
            match e.info().contains("tab") {
                true => tab_error(text, at).unwrap_or_else(|| {
                    ConfigError::new(at, "", format!("{}; {TAB_HINT}", e.info()))
                }),
                false => ConfigError::new(at, "", e.info().to_string()),
            }
        })?;
        let pos = Pos::new(span.start.line(), span.start.col() + 1);
        builder.event(event, pos)?;
    }
    Ok(builder.root.unwrap_or(Node {
        pos: Pos::new(1, 1),
        kind: Kind::Map(Vec::new()),
    }))
}

const TAB_HINT: &str = "indent with spaces (YAML does not allow tabs)";

/// saphyr reports a tab in the indentation at the start of the scalar
/// before it ("while scanning a plain scalar, found a tab" on the previous
/// line), naming no key. This finds the first line from the error's on
/// that is indented with a tab and points at that tab, naming the key it
/// indents.
fn tab_error(text: &str, at: Pos) -> Option<ConfigError> {
    let (line, col, rest) = text
        .lines()
        .enumerate()
        .skip(at.line.saturating_sub(1))
        .find_map(|(i, l)| {
            let content = l.trim_start_matches([' ', '\t']);
            let indent = &l[..l.len() - content.len()];
            let tab = indent.find('\t')?;
            let real = !content.is_empty() && !content.starts_with('#');
            real.then(|| (i + 1, indent[..tab].chars().count() + 1, content))
        })?;
    // `key: value`, `key:` or `- key: value`; a flow collection or a bare
    // item has no key to name.
    let entry = rest.trim_start_matches(['-', ' ', '\t']);
    let key = entry
        .split_once(": ")
        .map(|(k, _)| k)
        .or_else(|| entry.strip_suffix(':'))
        .map(|k| k.trim().trim_matches(['"', '\'']))
        .filter(|k| !k.is_empty() && !k.contains(['{', '[', ' ', ',']));
    let what = match key {
        Some(k) => format!("`{k}` is indented with a tab"),
        None => "this line is indented with a tab".to_string(),
    };
    Some(ConfigError::new(
        Pos::new(line, col),
        "",
        format!("{what}; {TAB_HINT}"),
    ))
}

struct Builder {
    /// Open collections, with the anchor id each will be stored under.
    stack: Vec<(Node, usize)>,
    /// Each anchored node with its size in nodes.
    anchors: HashMap<usize, (Node, usize)>,
    /// Nodes copied in by aliases so far, bounded by `MAX_ALIAS_NODES`.
    expanded: usize,
    root: Option<Node>,
}

/// Aliases copy their anchor's tree: nested ones grow it exponentially (a
/// "billion laughs" file of 600 bytes would need gigabytes). A config that
/// reuses route defaults stays far below this.
const MAX_ALIAS_NODES: usize = 10_000;

fn size(node: &Node) -> usize {
    1 + match &node.kind {
        Kind::Seq(items) => items.iter().map(size).sum(),
        Kind::Map(entries) => entries.iter().map(|(k, v)| size(k) + size(v)).sum(),
        _ => 0,
    }
}

impl Builder {
    fn event(&mut self, event: Event<'_>, pos: Pos) -> Result<(), ConfigError> {
        match event {
            Event::Scalar(value, style, anchor, _tag) => {
                let node = Node {
                    pos,
                    kind: Kind::Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                };
                self.finish(node, anchor);
            }
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    pos,
                    kind: Kind::Seq(Vec::new()),
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => self.stack.push((
                Node {
                    pos,
                    kind: Kind::Map(Vec::new()),
                },
                anchor,
            )),
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor)) = self.stack.pop() {
                    if let Kind::Map(entries) = &node.kind {
                        if entries.last().is_some_and(|(_, v)| v.pos.line == 0) {
                            return Err(ConfigError::new(
                                node.pos,
                                "",
                                "mapping key without a value",
                            ));
                        }
                    }
                    self.finish(node, anchor);
                }
            }
            Event::Alias(id) => {
                let (node, n) = self.anchors.get(&id).ok_or_else(|| {
                    ConfigError::new(pos, "", "alias refers to an unknown anchor")
                })?;
                self.expanded += n;
                if self.expanded > MAX_ALIAS_NODES {
                    return Err(ConfigError::new(
                        pos,
                        "",
                        format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                    ));
                }
                let node = node.clone();
                self.finish(node, 0);
            }
            Event::DocumentStart(_) if self.root.is_some() => {
                return Err(ConfigError::new(
                    pos,
                    "",
                    "only one YAML document is allowed",
                ));
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd => {}
        }
        Ok(())
    }

    /// Attaches a completed node to its parent (a key, a value, or an item).
    fn finish(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), size(&node)));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some((parent, _)) => match &mut parent.kind {
                Kind::Seq(items) => items.push(node),
                Kind::Map(entries) => match entries.last_mut() {
                    // A value is pending while the last key has the placeholder.
                    Some((_, value)) if value.pos.line == 0 => *value = node,
                    _ => entries.push((node, PENDING)),
                },
                Kind::Scalar { .. } => unreachable!("only collections are pushed on the stack"),
            },
        }
    }
}

/// Placeholder value of a key whose value has not been parsed yet (line 0
/// never occurs in a real position).
const PENDING: Node = Node {
    pos: Pos { line: 0, col: 0 },
    kind: Kind::Seq(Vec::new()),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_line_and_column() {
        let root = parse("a: 1\nroutes:\n  - name: x\n    path: /y\n").unwrap();
        assert_eq!(root.locate("a"), Pos::new(1, 4));
        assert_eq!(root.locate("routes[0].path"), Pos::new(4, 11));
        // A missing key points at the enclosing mapping.
        assert_eq!(root.locate("routes[0].upstream"), Pos::new(3, 5));
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.pos.line >= 1, "{err:?}");
    }

    #[test]
    fn aliases_are_expanded() {
        let root = parse("x: &v hello\ny: *v\n").unwrap();
        let map = root.as_map().unwrap();
        assert!(matches!(&map[1].1.kind, Kind::Scalar { value, .. } if value == "hello"));
    }
}
