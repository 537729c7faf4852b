//! Confluent's JSON Schema compatibility rules: walk the original (writer) and the update
//! (reader) side by side, record every difference found with its JSON path, and call the
//! change compatible when each difference is of a compatible type (Confluent's default,
//! "strict", set).

use super::load::{ArrS, Crit, Id, Kind, Model, NumS, ObjS, StrS};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Confluent's difference types (the names are its `errorType`s).
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Change {
    SCHEMA_ADDED,
    SCHEMA_REMOVED,
    TYPE_EXTENDED,
    TYPE_NARROWED,
    TYPE_CHANGED,
    MAX_LENGTH_ADDED,
    MAX_LENGTH_REMOVED,
    MAX_LENGTH_INCREASED,
    MAX_LENGTH_DECREASED,
    MIN_LENGTH_ADDED,
    MIN_LENGTH_REMOVED,
    MIN_LENGTH_INCREASED,
    MIN_LENGTH_DECREASED,
    PATTERN_ADDED,
    PATTERN_REMOVED,
    PATTERN_CHANGED,
    MAXIMUM_ADDED,
    MAXIMUM_REMOVED,
    MAXIMUM_INCREASED,
    MAXIMUM_DECREASED,
    MINIMUM_ADDED,
    MINIMUM_REMOVED,
    MINIMUM_INCREASED,
    MINIMUM_DECREASED,
    EXCLUSIVE_MAXIMUM_ADDED,
    EXCLUSIVE_MAXIMUM_REMOVED,
    EXCLUSIVE_MAXIMUM_INCREASED,
    EXCLUSIVE_MAXIMUM_DECREASED,
    EXCLUSIVE_MINIMUM_ADDED,
    EXCLUSIVE_MINIMUM_REMOVED,
    EXCLUSIVE_MINIMUM_INCREASED,
    EXCLUSIVE_MINIMUM_DECREASED,
    MULTIPLE_OF_ADDED,
    MULTIPLE_OF_REMOVED,
    MULTIPLE_OF_EXPANDED,
    MULTIPLE_OF_REDUCED,
    MULTIPLE_OF_CHANGED,
    REQUIRED_ATTRIBUTE_ADDED,
    REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED,
    REQUIRED_ATTRIBUTE_REMOVED,
    MAX_PROPERTIES_ADDED,
    MAX_PROPERTIES_REMOVED,
    MAX_PROPERTIES_INCREASED,
    MAX_PROPERTIES_DECREASED,
    MIN_PROPERTIES_ADDED,
    MIN_PROPERTIES_REMOVED,
    MIN_PROPERTIES_INCREASED,
    MIN_PROPERTIES_DECREASED,
    ADDITIONAL_PROPERTIES_ADDED,
    ADDITIONAL_PROPERTIES_REMOVED,
    ADDITIONAL_PROPERTIES_EXTENDED,
    ADDITIONAL_PROPERTIES_NARROWED,
    DEPENDENCY_ARRAY_ADDED,
    DEPENDENCY_ARRAY_REMOVED,
    DEPENDENCY_ARRAY_EXTENDED,
    DEPENDENCY_ARRAY_NARROWED,
    DEPENDENCY_ARRAY_CHANGED,
    DEPENDENCY_SCHEMA_ADDED,
    DEPENDENCY_SCHEMA_REMOVED,
    REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL,
    REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL,
    OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL,
    PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL,
    REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL,
    REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL,
    OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL,
    PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL,
    PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL,
    PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL,
    PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    UNEVALUATED_PROPERTIES_ADDED,
    UNEVALUATED_PROPERTIES_REMOVED,
    UNEVALUATED_PROPERTIES_EXTENDED,
    UNEVALUATED_PROPERTIES_NARROWED,
    MAX_ITEMS_ADDED,
    MAX_ITEMS_REMOVED,
    MAX_ITEMS_INCREASED,
    MAX_ITEMS_DECREASED,
    MIN_ITEMS_ADDED,
    MIN_ITEMS_REMOVED,
    MIN_ITEMS_INCREASED,
    MIN_ITEMS_DECREASED,
    MAX_CONTAINS_ADDED,
    MAX_CONTAINS_REMOVED,
    MAX_CONTAINS_INCREASED,
    MAX_CONTAINS_DECREASED,
    MIN_CONTAINS_ADDED,
    MIN_CONTAINS_REMOVED,
    MIN_CONTAINS_INCREASED,
    MIN_CONTAINS_DECREASED,
    UNIQUE_ITEMS_ADDED,
    UNIQUE_ITEMS_REMOVED,
    ADDITIONAL_ITEMS_ADDED,
    ADDITIONAL_ITEMS_REMOVED,
    ADDITIONAL_ITEMS_EXTENDED,
    ADDITIONAL_ITEMS_NARROWED,
    UNEVALUATED_ITEMS_ADDED,
    UNEVALUATED_ITEMS_REMOVED,
    UNEVALUATED_ITEMS_EXTENDED,
    UNEVALUATED_ITEMS_NARROWED,
    ITEM_ADDED_TO_OPEN_CONTENT_MODEL,
    ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL,
    ITEM_ADDED_TO_CLOSED_CONTENT_MODEL,
    ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL,
    ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL,
    ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL,
    ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL,
    ENUM_ARRAY_EXTENDED,
    ENUM_ARRAY_NARROWED,
    ENUM_ARRAY_CHANGED,
    COMBINED_TYPE_EXTENDED,
    COMBINED_TYPE_CHANGED,
    PRODUCT_TYPE_EXTENDED,
    PRODUCT_TYPE_NARROWED,
    SUM_TYPE_EXTENDED,
    SUM_TYPE_NARROWED,
    COMBINED_TYPE_SUBSCHEMAS_CHANGED,
    NOT_TYPE_EXTENDED,
    NOT_TYPE_NARROWED,
}

use Change::*;

impl Change {
    /// In Confluent's default ("strict") set of compatible changes.
    pub(crate) fn compatible(self) -> bool {
        matches!(
            self,
            SCHEMA_REMOVED
                | TYPE_EXTENDED
                | MAX_LENGTH_INCREASED
                | MAX_LENGTH_REMOVED
                | MIN_LENGTH_DECREASED
                | MIN_LENGTH_REMOVED
                | PATTERN_REMOVED
                | MAXIMUM_INCREASED
                | MAXIMUM_REMOVED
                | MINIMUM_DECREASED
                | MINIMUM_REMOVED
                | EXCLUSIVE_MAXIMUM_INCREASED
                | EXCLUSIVE_MAXIMUM_REMOVED
                | EXCLUSIVE_MINIMUM_DECREASED
                | EXCLUSIVE_MINIMUM_REMOVED
                | MULTIPLE_OF_REDUCED
                | MULTIPLE_OF_REMOVED
                | REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED
                | REQUIRED_ATTRIBUTE_REMOVED
                | DEPENDENCY_ARRAY_NARROWED
                | DEPENDENCY_ARRAY_REMOVED
                | DEPENDENCY_SCHEMA_REMOVED
                | MAX_PROPERTIES_INCREASED
                | MAX_PROPERTIES_REMOVED
                | MIN_PROPERTIES_DECREASED
                | MIN_PROPERTIES_REMOVED
                | ADDITIONAL_PROPERTIES_ADDED
                | ADDITIONAL_PROPERTIES_EXTENDED
                | UNEVALUATED_PROPERTIES_ADDED
                | UNEVALUATED_PROPERTIES_EXTENDED
                | PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL
                | REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL
                | OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL
                | PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL
                | PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL
                | PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                | PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                | MAX_ITEMS_INCREASED
                | MAX_ITEMS_REMOVED
                | MIN_ITEMS_DECREASED
                | MIN_ITEMS_REMOVED
                | MAX_CONTAINS_INCREASED
                | MAX_CONTAINS_REMOVED
                | MIN_CONTAINS_DECREASED
                | MIN_CONTAINS_REMOVED
                | UNIQUE_ITEMS_REMOVED
                | ADDITIONAL_ITEMS_ADDED
                | ADDITIONAL_ITEMS_EXTENDED
                | UNEVALUATED_ITEMS_ADDED
                | UNEVALUATED_ITEMS_EXTENDED
                | ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL
                | ITEM_ADDED_TO_CLOSED_CONTENT_MODEL
                | ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL
                | ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL
                | ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                | ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                | ENUM_ARRAY_EXTENDED
                | COMBINED_TYPE_EXTENDED
                | PRODUCT_TYPE_NARROWED
                | SUM_TYPE_EXTENDED
                | NOT_TYPE_NARROWED
        )
    }

    /// Confluent's description, `{0}` standing for the reader's role and `{1}` the writer's.
    fn template(self, path: &str) -> String {
        match self {
            SCHEMA_ADDED | MAXIMUM_ADDED | MINIMUM_ADDED | EXCLUSIVE_MAXIMUM_ADDED
            | EXCLUSIVE_MINIMUM_ADDED | MULTIPLE_OF_ADDED | MAX_LENGTH_ADDED | MIN_LENGTH_ADDED
            | PATTERN_ADDED | REQUIRED_ATTRIBUTE_ADDED | MAX_PROPERTIES_ADDED
            | MIN_PROPERTIES_ADDED | DEPENDENCY_ARRAY_ADDED | DEPENDENCY_SCHEMA_ADDED
            | MAX_ITEMS_ADDED | MIN_ITEMS_ADDED | MAX_CONTAINS_ADDED | MIN_CONTAINS_ADDED
            | UNIQUE_ITEMS_ADDED | ADDITIONAL_ITEMS_REMOVED | ADDITIONAL_PROPERTIES_REMOVED
            | UNEVALUATED_PROPERTIES_REMOVED | UNEVALUATED_ITEMS_REMOVED => format!(
                "The keyword at path '{path}' in the {{0}} schema is not present in the {{1}} schema"
            ),
            MIN_LENGTH_INCREASED | MINIMUM_INCREASED | EXCLUSIVE_MINIMUM_INCREASED
            | MIN_PROPERTIES_INCREASED | MULTIPLE_OF_EXPANDED | MIN_ITEMS_INCREASED
            | MIN_CONTAINS_INCREASED => format!(
                "The value at path '{path}' in the {{0}} schema is more than its value in the {{1}} schema"
            ),
            MAX_LENGTH_DECREASED | MAXIMUM_DECREASED | MAX_ITEMS_DECREASED
            | MAX_CONTAINS_DECREASED | EXCLUSIVE_MAXIMUM_DECREASED | MAX_PROPERTIES_DECREASED => {
                format!(
                    "The value at path '{path}' in the {{0}} schema is less than its value in the {{1}} schema"
                )
            }
            PATTERN_CHANGED | MULTIPLE_OF_CHANGED | DEPENDENCY_ARRAY_CHANGED => format!(
                "The value at path '{path}' is different between the {{0}} and {{1}} schema"
            ),
            ADDITIONAL_ITEMS_NARROWED | ENUM_ARRAY_NARROWED | SUM_TYPE_NARROWED
            | ADDITIONAL_PROPERTIES_NARROWED | UNEVALUATED_PROPERTIES_NARROWED
            | UNEVALUATED_ITEMS_NARROWED => format!(
                "An array or combined type at path '{path}' has fewer elements in the {{0}} schema than the {{1}} schema"
            ),
            DEPENDENCY_ARRAY_EXTENDED | PRODUCT_TYPE_EXTENDED | SUM_TYPE_EXTENDED
            | NOT_TYPE_EXTENDED => format!(
                "An array or combined type at path '{path}' has more elements in the {{0}} schema than the {{1}} schema"
            ),
            TYPE_CHANGED | TYPE_NARROWED | COMBINED_TYPE_CHANGED
            | COMBINED_TYPE_SUBSCHEMAS_CHANGED | ENUM_ARRAY_CHANGED => format!(
                "A type at path '{path}' is different between the {{0}} schema and the {{1}} schema"
            ),
            REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL
            | REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL
            | OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL
            | ITEM_ADDED_TO_OPEN_CONTENT_MODEL => format!(
                "The {{0}} schema has an open content model and has a property or item at path '{path}' which is missing in the {{1}} schema"
            ),
            REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL => format!(
                "The {{0}} schema has an unopen content model and has a required property at path '{path}' which is missing in the {{1}} schema"
            ),
            PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL | ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL => {
                format!(
                    "The {{0}} has a closed content model and is missing a property or item present at path '{path}' in the {{1}} schema"
                )
            }
            PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
            | ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL => format!(
                "A property or item is missing in the {{0}} schema but present at path '{path}' in the {{1}} schema and is not covered by its partially open content model"
            ),
            PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
            | ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL => format!(
                "The {{0}} schema has a property or item at path '{path}' which is missing in the {{1}} schema and is not covered by its partially open content model"
            ),
            _ => String::new(),
        }
    }

    /// The message Confluent's registry gives for this difference at `path`, the reader
    /// called "new" and the writer "old" (as in a BACKWARD check).
    pub(crate) fn message(self, path: &str) -> String {
        let description = self
            .template(path)
            .replace("{0}", "new")
            .replace("{1}", "old");
        format!("{{errorType:'{self:?}', description:'{description}'}}")
    }
}

/// One difference: its type and where, relative to the pair being compared ("" = there).
#[derive(Clone, Debug)]
pub(crate) struct Diff {
    pub ty: Change,
    pub path: String,
}

fn compatible(diffs: &[Diff]) -> bool {
    diffs.iter().all(|d| d.ty.compatible())
}

fn at(seg: &str, diffs: Vec<Diff>) -> Vec<Diff> {
    diffs
        .into_iter()
        .map(|d| Diff {
            path: if d.path.is_empty() {
                seg.to_owned()
            } else {
                format!("{seg}/{}", d.path)
            },
            ty: d.ty,
        })
        .collect()
}

fn one(ty: Change, path: &str) -> Diff {
    Diff {
        ty,
        path: path.to_owned(),
    }
}

/// How many pair comparisons before results are memoized even under a cycle assumption.
const BUDGET: u64 = 100_000;
/// How deep comparisons recurse before a pair is assumed compatible.
const MAX_DEPTH: usize = 128;

/// The comparison of an original (writer) and an update (reader) model.
pub(crate) struct Cx<'a> {
    /// [original, update]; `flip` swaps them (for `not`).
    models: [&'a Model; 2],
    flip: bool,
    memo: HashMap<(bool, Id, Id), Rc<Vec<Diff>>>,
    stack: HashSet<(bool, Id, Id)>,
    truncated: bool,
    steps: u64,
    depth: usize,
}

/// Every difference from `original` to `update`, paths absolute (`#/...`).
pub(crate) fn compare(original: &Model, update: &Model) -> Vec<Diff> {
    let mut cx = Cx {
        models: [original, update],
        flip: false,
        memo: HashMap::new(),
        stack: HashSet::new(),
        truncated: false,
        steps: 0,
        depth: 0,
    };
    let diffs = cx.cmp(Some(original.root), Some(update.root));
    diffs
        .into_iter()
        .map(|d| Diff {
            path: format!("#/{}", d.path),
            ty: d.ty,
        })
        .collect()
}

impl<'a> Cx<'a> {
    fn o(&self) -> &'a Model {
        self.models[self.flip as usize]
    }
    fn u(&self) -> &'a Model {
        self.models[1 - self.flip as usize]
    }

    fn cmp(&mut self, o: Option<Id>, u: Option<Id>) -> Vec<Diff> {
        let (o, u) = match (o, u) {
            (None, None) => return vec![],
            (None, Some(_)) => return vec![one(SCHEMA_ADDED, "")],
            (Some(_), None) => return vec![one(SCHEMA_REMOVED, "")],
            (Some(o), Some(u)) => (self.o().resolve(o), self.u().resolve(u)),
        };
        let key = (self.flip, o, u);
        if let Some(d) = self.memo.get(&key) {
            return d.as_ref().clone();
        }
        if self.stack.contains(&key) || self.depth >= MAX_DEPTH {
            // A cycle (through $ref): assume compatible, as Confluent does.
            self.truncated = true;
            return vec![];
        }
        self.stack.insert(key);
        self.depth += 1;
        self.steps += 1;
        let saved = std::mem::replace(&mut self.truncated, false);
        let diffs = self.types(o, u);
        self.depth -= 1;
        self.stack.remove(&key);
        if !self.truncated || self.steps > BUDGET {
            self.memo.insert(key, Rc::new(diffs.clone()));
        }
        self.truncated |= saved;
        diffs
    }

    fn types(&mut self, o: Id, u: Id) -> Vec<Diff> {
        let (om, um) = (self.o(), self.u());
        let (ok, uk) = (&om.nodes[o].kind, &um.nodes[u].kind);
        match (ok, uk) {
            (Kind::Comb(..), Kind::Comb(..)) => {}
            (_, Kind::Comb(crit, subs)) => {
                if subs.len() == 1 {
                    let d = self.cmp(Some(o), Some(subs[0]));
                    if compatible(&d) {
                        return d;
                    }
                } else if *crit != Crit::All {
                    for &s in subs {
                        let mut d = self.cmp(Some(o), Some(s));
                        if compatible(&d) {
                            d.push(one(SUM_TYPE_EXTENDED, ""));
                            return d;
                        }
                    }
                }
            }
            (Kind::Comb(crit, subs), _) => {
                if subs.len() == 1 {
                    let d = self.cmp(Some(subs[0]), Some(u));
                    if compatible(&d) {
                        return d;
                    }
                } else if *crit == Crit::All {
                    for &s in subs {
                        let mut d = self.cmp(Some(s), Some(u));
                        if compatible(&d) {
                            d.push(one(PRODUCT_TYPE_NARROWED, ""));
                            return d;
                        }
                    }
                }
            }
            _ => {}
        }
        if ok.class() != uk.class() {
            if matches!(ok, Kind::False) || matches!(uk, Kind::Empty) {
                return vec![];
            }
            if om.nodes[o].connect_bytes && um.nodes[u].connect_bytes {
                return vec![];
            }
            return vec![one(TYPE_CHANGED, "")];
        }
        let mut out = Vec::new();
        match (ok, uk) {
            (Kind::Str(a), Kind::Str(b)) => strings(a, b, &mut out),
            (Kind::Num(a), Kind::Num(b)) => numbers(a, b, &mut out),
            (Kind::Const(a), Kind::Const(b)) if a != b => {
                out.push(one(ENUM_ARRAY_CHANGED, "const"));
            }
            (Kind::Enum(a), Kind::Enum(b)) => {
                let a_in_b = a.iter().all(|x| b.contains(x));
                let b_in_a = b.iter().all(|x| a.contains(x));
                if !(a_in_b && b_in_a) {
                    let ty = if a_in_b {
                        ENUM_ARRAY_EXTENDED
                    } else if b_in_a {
                        ENUM_ARRAY_NARROWED
                    } else {
                        ENUM_ARRAY_CHANGED
                    };
                    out.push(one(ty, "enum"));
                }
            }
            (Kind::Comb(oc, os), Kind::Comb(uc, us)) => {
                let (oc, uc) = (*oc, *uc);
                let (os, us) = (os.clone(), us.clone());
                self.combined(oc, &os, uc, &us, &mut out);
            }
            (Kind::Not(a), Kind::Not(b)) => {
                let (a, b) = (*a, *b);
                self.flip = !self.flip;
                let d = self.cmp(Some(b), Some(a));
                self.flip = !self.flip;
                let ty = if compatible(&d) {
                    NOT_TYPE_NARROWED
                } else {
                    NOT_TYPE_EXTENDED
                };
                out.push(one(ty, "not"));
            }
            (Kind::Obj(a), Kind::Obj(b)) => self.objects(a, b, &mut out),
            (Kind::Arr(a), Kind::Arr(b)) => self.arrays(a, b, &mut out),
            _ => {}
        }
        out
    }

    fn combined(&mut self, oc: Crit, os: &[Id], uc: Crit, us: &[Id], out: &mut Vec<Diff>) {
        if oc != uc {
            let extended = uc == Crit::Any
                || (os.len() == 1 && us.len() == 1)
                || (os.len() == 1 && uc == Crit::One)
                || (us.len() == 1 && oc == Crit::All);
            if extended {
                out.push(one(COMBINED_TYPE_EXTENDED, ""));
            } else {
                out.push(one(COMBINED_TYPE_CHANGED, ""));
                return;
            }
        }
        let (om, um) = (self.o(), self.u());
        let os = dedup(os, om);
        let us = dedup(us, um);
        if os.len() < us.len() {
            out.push(one(
                if uc == Crit::All {
                    PRODUCT_TYPE_EXTENDED
                } else {
                    SUM_TYPE_EXTENDED
                },
                "",
            ));
        } else if os.len() > us.len() {
            out.push(one(
                if oc != Crit::All {
                    SUM_TYPE_NARROWED
                } else {
                    PRODUCT_TYPE_NARROWED
                },
                "",
            ));
        }
        // edges[i] = (j, diffs) for every compatible pairing of original i with update j.
        let mut edges: Vec<Vec<(usize, Vec<Diff>)>> = Vec::with_capacity(os.len());
        for (i, &a) in os.iter().enumerate() {
            let seg = format!("{}/{i}", oc.name());
            let mut row = Vec::new();
            for (j, &b) in us.iter().enumerate() {
                let d = self.cmp(Some(a), Some(b));
                if compatible(&d) {
                    row.push((j, at(&seg, d)));
                }
            }
            edges.push(row);
        }
        let matched = max_matching(&edges, us.len());
        let mut size = 0;
        for (j, m) in matched.iter().enumerate() {
            if let Some(i) = *m {
                size += 1;
                if let Some((_, d)) = edges[i].iter().find(|(jj, _)| *jj == j) {
                    out.extend(d.iter().cloned());
                }
            }
        }
        if size < os.len().min(us.len()) {
            out.push(one(COMBINED_TYPE_SUBSCHEMAS_CHANGED, ""));
        }
    }

    fn objects(&mut self, o: &ObjS, u: &ObjS, out: &mut Vec<Diff>) {
        let (om, um) = (self.o(), self.u());
        // required
        for (k, _) in &o.props {
            if u.props.iter().any(|(k2, _)| k2 == k) {
                let was = o.required.contains(k);
                let is = u.required.contains(k);
                let path = format!("required/{k}");
                if was && !is {
                    out.push(one(REQUIRED_ATTRIBUTE_REMOVED, &path));
                } else if !was && is {
                    let with_default = prop(u, k).is_some_and(|id| um.nodes[id].has_default);
                    out.push(one(
                        if with_default {
                            REQUIRED_ATTRIBUTE_WITH_DEFAULT_ADDED
                        } else {
                            REQUIRED_ATTRIBUTE_ADDED
                        },
                        &path,
                    ));
                }
            }
        }
        // properties
        let mut keys: Vec<&String> = o.props.iter().map(|(k, _)| k).collect();
        for (k, _) in &u.props {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for k in keys {
            let path = format!("properties/{k}");
            match (prop(o, k), prop(u, k)) {
                (Some(os), None) => {
                    if open_object(u, um) {
                        out.push(one(PROPERTY_REMOVED_FROM_OPEN_CONTENT_MODEL, &path));
                    } else if let Some(s) = partial_object(u, um, k) {
                        let d = self.cmp(Some(os), Some(s));
                        let ok = compatible(&d);
                        out.extend(at(&path, d));
                        out.push(one(
                            if ok {
                                PROPERTY_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                            } else {
                                PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                            },
                            &path,
                        ));
                    } else if matches!(om.nodes[os].kind, Kind::False) {
                        out.push(one(
                            PROPERTY_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL,
                            &path,
                        ));
                    } else {
                        out.push(one(PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL, &path));
                    }
                }
                (None, Some(us)) => {
                    let required = u.required.contains(k);
                    let with_default = um.nodes[us].has_default;
                    if open_object(o, om) {
                        let ty = if matches!(um.nodes[us].kind, Kind::Empty) {
                            PROPERTY_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL
                        } else if required && with_default {
                            REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_OPEN_CONTENT_MODEL
                        } else if required {
                            REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL
                        } else {
                            OPTIONAL_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL
                        };
                        out.push(one(ty, &path));
                    } else {
                        if let Some(s) = partial_object(o, om, k) {
                            let d = self.cmp(Some(s), Some(us));
                            let ok = compatible(&d);
                            out.extend(at(&path, d));
                            out.push(one(
                                if ok {
                                    PROPERTY_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                                } else {
                                    PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                                },
                                &path,
                            ));
                        }
                        let ty = if required && with_default {
                            REQUIRED_PROPERTY_WITH_DEFAULT_ADDED_TO_UNOPEN_CONTENT_MODEL
                        } else if required {
                            REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL
                        } else {
                            OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL
                        };
                        out.push(one(ty, &path));
                    }
                }
                (Some(os), Some(us)) => {
                    let d = self.cmp(Some(os), Some(us));
                    out.extend(at(&path, d));
                }
                (None, None) => {}
            }
        }
        // dependencies
        let mut keys: Vec<&String> = o.prop_deps.iter().map(|(k, _)| k).collect();
        for (k, _) in &u.prop_deps {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for k in keys {
            let path = format!("dependencies/{k}");
            let a = o.prop_deps.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v);
            let b = u.prop_deps.iter().find(|(k2, _)| k2 == k).map(|(_, v)| v);
            match (a, b) {
                (_, None) => out.push(one(DEPENDENCY_ARRAY_REMOVED, &path)),
                (None, _) => out.push(one(DEPENDENCY_ARRAY_ADDED, &path)),
                (Some(a), Some(b)) => {
                    let a_in_b = a.iter().all(|x| b.contains(x));
                    let b_in_a = b.iter().all(|x| a.contains(x));
                    if !(a_in_b && b_in_a) {
                        out.push(one(
                            if a_in_b {
                                DEPENDENCY_ARRAY_EXTENDED
                            } else if b_in_a {
                                DEPENDENCY_ARRAY_NARROWED
                            } else {
                                DEPENDENCY_ARRAY_CHANGED
                            },
                            &path,
                        ));
                    }
                }
            }
        }
        let mut keys: Vec<&String> = o.schema_deps.iter().map(|(k, _)| k).collect();
        for (k, _) in &u.schema_deps {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for k in keys {
            let path = format!("dependencies/{k}");
            let a = o
                .schema_deps
                .iter()
                .find(|(k2, _)| k2 == k)
                .map(|(_, v)| *v);
            let b = u
                .schema_deps
                .iter()
                .find(|(k2, _)| k2 == k)
                .map(|(_, v)| *v);
            match (a, b) {
                (_, None) => out.push(one(DEPENDENCY_SCHEMA_REMOVED, &path)),
                (None, _) => out.push(one(DEPENDENCY_SCHEMA_ADDED, &path)),
                (a, b) => {
                    let d = self.cmp(a, b);
                    out.extend(at(&path, d));
                }
            }
        }
        // additionalProperties
        let path = "additionalProperties";
        if o.add_permits != u.add_permits {
            out.push(one(
                if u.add_permits {
                    ADDITIONAL_PROPERTIES_ADDED
                } else {
                    ADDITIONAL_PROPERTIES_REMOVED
                },
                path,
            ));
        } else if o.add_schema.is_none() && u.add_schema.is_some() {
            out.push(one(ADDITIONAL_PROPERTIES_NARROWED, path));
        } else if o.add_schema.is_some() && u.add_schema.is_none() {
            out.push(one(ADDITIONAL_PROPERTIES_EXTENDED, path));
        } else {
            let d = self.cmp(o.add_schema, u.add_schema);
            out.extend(at(path, d));
        }
        self.unevaluated(o.uneval, u.uneval, "unevaluatedProperties", out);
        bound(
            o.max_props,
            u.max_props,
            "maxProperties",
            MAX_PROPERTIES,
            out,
        );
        bound(
            o.min_props,
            u.min_props,
            "minProperties",
            MIN_PROPERTIES,
            out,
        );
    }

    fn unevaluated(&mut self, a: Option<Id>, b: Option<Id>, path: &str, out: &mut Vec<Diff>) {
        let props = path == "unevaluatedProperties";
        let (added, removed, extended, narrowed) = if props {
            (
                UNEVALUATED_PROPERTIES_ADDED,
                UNEVALUATED_PROPERTIES_REMOVED,
                UNEVALUATED_PROPERTIES_EXTENDED,
                UNEVALUATED_PROPERTIES_NARROWED,
            )
        } else {
            (
                UNEVALUATED_ITEMS_ADDED,
                UNEVALUATED_ITEMS_REMOVED,
                UNEVALUATED_ITEMS_EXTENDED,
                UNEVALUATED_ITEMS_NARROWED,
            )
        };
        let (om, um) = (self.o(), self.u());
        let is_false = |m: &Model, id: Id| matches!(m.nodes[id].kind, Kind::False);
        let is_empty = |m: &Model, id: Id| matches!(m.nodes[id].kind, Kind::Empty);
        let ty = match (a, b) {
            (None, None) => return,
            (None, Some(b)) => {
                if is_false(um, b) {
                    removed
                } else {
                    narrowed
                }
            }
            (Some(a), None) => {
                if is_false(om, a) {
                    added
                } else {
                    extended
                }
            }
            (Some(a), Some(b)) => {
                if is_false(om, a) && !is_false(um, b) {
                    added
                } else if !is_false(om, a) && is_false(um, b) {
                    removed
                } else if is_empty(om, a) && !is_empty(um, b) {
                    narrowed
                } else if !is_empty(om, a) && is_empty(um, b) {
                    extended
                } else {
                    let d = self.cmp(Some(a), Some(b));
                    out.extend(at(path, d));
                    return;
                }
            }
        };
        out.push(one(ty, path));
    }

    fn arrays(&mut self, o: &ArrS, u: &ArrS, out: &mut Vec<Diff>) {
        let (om, um) = (self.o(), self.u());
        let d = self.cmp(o.all_items, u.all_items);
        out.extend(at("items", d));
        let common = o.item_list.len().min(u.item_list.len());
        for i in 0..common {
            let d = self.cmp(Some(o.item_list[i]), Some(u.item_list[i]));
            out.extend(at(&format!("items/{i}"), d));
        }
        for (i, &os) in o.item_list.iter().enumerate().skip(common) {
            let path = format!("items/{i}");
            if open_array(u, um) {
                out.push(one(ITEM_REMOVED_FROM_OPEN_CONTENT_MODEL, &path));
            } else if let Some(s) = partial_array(u, um) {
                let d = self.cmp(Some(os), Some(s));
                let ok = compatible(&d);
                out.extend(at(&path, d));
                out.push(one(
                    if ok {
                        ITEM_REMOVED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                    } else {
                        ITEM_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                    },
                    &path,
                ));
            } else if matches!(om.nodes[os].kind, Kind::False) {
                out.push(one(
                    ITEM_WITH_FALSE_REMOVED_FROM_CLOSED_CONTENT_MODEL,
                    &path,
                ));
            } else {
                out.push(one(ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL, &path));
            }
        }
        for (i, &us) in u.item_list.iter().enumerate().skip(common) {
            let path = format!("items/{i}");
            if open_array(o, om) {
                out.push(one(
                    if matches!(um.nodes[us].kind, Kind::Empty) {
                        ITEM_WITH_EMPTY_SCHEMA_ADDED_TO_OPEN_CONTENT_MODEL
                    } else {
                        ITEM_ADDED_TO_OPEN_CONTENT_MODEL
                    },
                    &path,
                ));
            } else if let Some(s) = partial_array(o, om) {
                let d = self.cmp(Some(s), Some(us));
                let ok = compatible(&d);
                out.extend(at(&path, d));
                out.push(one(
                    if ok {
                        ITEM_ADDED_IS_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                    } else {
                        ITEM_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL
                    },
                    &path,
                ));
            } else {
                out.push(one(ITEM_ADDED_TO_CLOSED_CONTENT_MODEL, &path));
            }
        }
        let path = "additionalItems";
        if o.add_permits != u.add_permits {
            out.push(one(
                if o.add_permits {
                    ADDITIONAL_ITEMS_REMOVED
                } else {
                    ADDITIONAL_ITEMS_ADDED
                },
                path,
            ));
        } else if o.add_schema.is_none() && u.add_schema.is_some() {
            out.push(one(ADDITIONAL_ITEMS_NARROWED, path));
        } else if o.add_schema.is_some() && u.add_schema.is_none() {
            out.push(one(ADDITIONAL_ITEMS_EXTENDED, path));
        } else {
            let d = self.cmp(o.add_schema, u.add_schema);
            out.extend(at(path, d));
        }
        self.unevaluated(o.uneval, u.uneval, "unevaluatedItems", out);
        bound(o.max_items, u.max_items, "maxItems", MAX_ITEMS, out);
        bound(o.min_items, u.min_items, "minItems", MIN_ITEMS, out);
        if o.unique != u.unique {
            out.push(one(
                if o.unique {
                    UNIQUE_ITEMS_REMOVED
                } else {
                    UNIQUE_ITEMS_ADDED
                },
                "uniqueItems",
            ));
        }
        bound(
            o.max_contains,
            u.max_contains,
            "maxContains",
            MAX_CONTAINS,
            out,
        );
        bound(
            o.min_contains,
            u.min_contains,
            "minContains",
            MIN_CONTAINS,
            out,
        );
    }
}

fn prop(o: &ObjS, k: &str) -> Option<Id> {
    o.props.iter().find(|(k2, _)| k2 == k).map(|(_, id)| *id)
}

/// Open content model: any other property is allowed with any value.
fn open_object(o: &ObjS, m: &Model) -> bool {
    o.add_permits
        && o.add_schema.is_none()
        && o.pattern_props.is_empty()
        && o.uneval
            .is_none_or(|id| matches!(m.nodes[id].kind, Kind::Empty))
}

/// The schema a partially open content model gives property `k`, if any.
fn partial_object(o: &ObjS, m: &Model, k: &str) -> Option<Id> {
    for (re, id) in &o.pattern_props {
        if re.as_ref().is_some_and(|re| re.is_match(k)) {
            return Some(*id);
        }
    }
    if o.add_schema.is_some() {
        return o.add_schema;
    }
    if o.add_permits {
        if let Some(id) = o.uneval {
            if !matches!(m.nodes[id].kind, Kind::False | Kind::Empty) {
                return Some(id);
            }
        }
    }
    None
}

fn open_array(a: &ArrS, m: &Model) -> bool {
    a.add_permits
        && a.add_schema.is_none()
        && a.uneval
            .is_none_or(|id| matches!(m.nodes[id].kind, Kind::Empty))
}

fn partial_array(a: &ArrS, m: &Model) -> Option<Id> {
    if a.add_schema.is_some() {
        return a.add_schema;
    }
    if a.add_permits {
        if let Some(id) = a.uneval {
            if !matches!(m.nodes[id].kind, Kind::False | Kind::Empty) {
                return Some(id);
            }
        }
    }
    None
}

/// Sub-schemas with the same JSON count once.
fn dedup(ids: &[Id], m: &Model) -> Vec<Id> {
    let mut seen = HashSet::new();
    ids.iter()
        .copied()
        .filter(|&id| seen.insert(m.nodes[id].key.as_str()))
        .collect()
}

/// Maximum bipartite matching (augmenting paths): for each update index, the original
/// index matched to it.
fn max_matching(edges: &[Vec<(usize, Vec<Diff>)>], n_right: usize) -> Vec<Option<usize>> {
    fn augment(
        i: usize,
        edges: &[Vec<(usize, Vec<Diff>)>],
        seen: &mut [bool],
        right: &mut [Option<usize>],
    ) -> bool {
        for (j, _) in &edges[i] {
            if !seen[*j] {
                seen[*j] = true;
                if right[*j].is_none_or(|k| augment(k, edges, seen, right)) {
                    right[*j] = Some(i);
                    return true;
                }
            }
        }
        false
    }
    let mut right = vec![None; n_right];
    for i in 0..edges.len() {
        let mut seen = vec![false; n_right];
        augment(i, edges, &mut seen, &mut right);
    }
    right
}

/// The four difference types of a bound keyword: added, removed, increased, decreased.
type Bound = (Change, Change, Change, Change);
const MAX_PROPERTIES: Bound = (
    MAX_PROPERTIES_ADDED,
    MAX_PROPERTIES_REMOVED,
    MAX_PROPERTIES_INCREASED,
    MAX_PROPERTIES_DECREASED,
);
const MIN_PROPERTIES: Bound = (
    MIN_PROPERTIES_ADDED,
    MIN_PROPERTIES_REMOVED,
    MIN_PROPERTIES_INCREASED,
    MIN_PROPERTIES_DECREASED,
);
const MAX_ITEMS: Bound = (
    MAX_ITEMS_ADDED,
    MAX_ITEMS_REMOVED,
    MAX_ITEMS_INCREASED,
    MAX_ITEMS_DECREASED,
);
const MIN_ITEMS: Bound = (
    MIN_ITEMS_ADDED,
    MIN_ITEMS_REMOVED,
    MIN_ITEMS_INCREASED,
    MIN_ITEMS_DECREASED,
);
const MAX_CONTAINS: Bound = (
    MAX_CONTAINS_ADDED,
    MAX_CONTAINS_REMOVED,
    MAX_CONTAINS_INCREASED,
    MAX_CONTAINS_DECREASED,
);
const MIN_CONTAINS: Bound = (
    MIN_CONTAINS_ADDED,
    MIN_CONTAINS_REMOVED,
    MIN_CONTAINS_INCREASED,
    MIN_CONTAINS_DECREASED,
);
const MAX_LENGTH: Bound = (
    MAX_LENGTH_ADDED,
    MAX_LENGTH_REMOVED,
    MAX_LENGTH_INCREASED,
    MAX_LENGTH_DECREASED,
);
const MIN_LENGTH: Bound = (
    MIN_LENGTH_ADDED,
    MIN_LENGTH_REMOVED,
    MIN_LENGTH_INCREASED,
    MIN_LENGTH_DECREASED,
);
const MAXIMUM: Bound = (
    MAXIMUM_ADDED,
    MAXIMUM_REMOVED,
    MAXIMUM_INCREASED,
    MAXIMUM_DECREASED,
);
const MINIMUM: Bound = (
    MINIMUM_ADDED,
    MINIMUM_REMOVED,
    MINIMUM_INCREASED,
    MINIMUM_DECREASED,
);
const EXCLUSIVE_MAXIMUM: Bound = (
    EXCLUSIVE_MAXIMUM_ADDED,
    EXCLUSIVE_MAXIMUM_REMOVED,
    EXCLUSIVE_MAXIMUM_INCREASED,
    EXCLUSIVE_MAXIMUM_DECREASED,
);
const EXCLUSIVE_MINIMUM: Bound = (
    EXCLUSIVE_MINIMUM_ADDED,
    EXCLUSIVE_MINIMUM_REMOVED,
    EXCLUSIVE_MINIMUM_INCREASED,
    EXCLUSIVE_MINIMUM_DECREASED,
);

fn bound<N: PartialOrd>(a: Option<N>, b: Option<N>, path: &str, t: Bound, out: &mut Vec<Diff>) {
    let ty = match (a, b) {
        (None, None) => return,
        (None, Some(_)) => t.0,
        (Some(_), None) => t.1,
        (Some(a), Some(b)) if a < b => t.2,
        (Some(a), Some(b)) if a > b => t.3,
        _ => return,
    };
    out.push(one(ty, path));
}

fn strings(o: &StrS, u: &StrS, out: &mut Vec<Diff>) {
    bound(o.max_len, u.max_len, "maxLength", MAX_LENGTH, out);
    bound(o.min_len, u.min_len, "minLength", MIN_LENGTH, out);
    match (&o.pattern, &u.pattern) {
        (None, Some(_)) => out.push(one(PATTERN_ADDED, "pattern")),
        (Some(_), None) => out.push(one(PATTERN_REMOVED, "pattern")),
        (Some(a), Some(b)) if a != b => out.push(one(PATTERN_CHANGED, "pattern")),
        _ => {}
    }
}

fn numbers(o: &NumS, u: &NumS, out: &mut Vec<Diff>) {
    bound(o.max, u.max, "maximum", MAXIMUM, out);
    bound(o.min, u.min, "minimum", MINIMUM, out);
    bound(
        o.ex_max,
        u.ex_max,
        "exclusiveMaximum",
        EXCLUSIVE_MAXIMUM,
        out,
    );
    bound(
        o.ex_min,
        u.ex_min,
        "exclusiveMinimum",
        EXCLUSIVE_MINIMUM,
        out,
    );
    let path = "multipleOf";
    match (&o.multiple_of, &u.multiple_of) {
        (None, None) => {}
        (None, Some(_)) => out.push(one(MULTIPLE_OF_ADDED, path)),
        (Some(_), None) => out.push(one(MULTIPLE_OF_REMOVED, path)),
        (Some(a), Some(b)) => {
            let (a, b) = (Dec::of(a), Dec::of(b));
            if !a.same(&b) {
                let ty = if a.divides(&b) {
                    MULTIPLE_OF_EXPANDED
                } else if b.divides(&a) {
                    MULTIPLE_OF_REDUCED
                } else {
                    MULTIPLE_OF_CHANGED
                };
                out.push(one(ty, path));
            }
        }
    }
    if o.integer != u.integer {
        out.push(one(
            if o.integer {
                TYPE_EXTENDED
            } else {
                TYPE_NARROWED
            },
            "",
        ));
    }
}

/// A decimal number `digits × 10^exp` read from JSON text, for exact `multipleOf` arithmetic
/// (with a floating-point fallback when it does not fit).
struct Dec {
    digits: Option<(i128, i32)>,
    float: f64,
}

impl Dec {
    fn of(n: &serde_json::Number) -> Dec {
        let text = n.to_string();
        let float = n.as_f64().unwrap_or(f64::NAN);
        let (mantissa, exp) = match text.find(['e', 'E']) {
            Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()),
            None => (text.as_str(), Some(0)),
        };
        let digits = exp.and_then(|exp| {
            let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let all = format!("{int}{frac}");
            let d = all.parse::<i128>().ok()?;
            Some((d, exp.checked_sub(i32::try_from(frac.len()).ok()?)?))
        });
        Dec { digits, float }
    }

    /// Both scaled to the smaller exponent, if that fits.
    fn aligned(&self, other: &Dec) -> Option<(i128, i128)> {
        let (a, ea) = self.digits?;
        let (b, eb) = other.digits?;
        let e = ea.min(eb);
        let scale = |d: i128, by: i32| -> Option<i128> {
            let p = 10i128.checked_pow(u32::try_from(by).ok()?)?;
            d.checked_mul(p)
        };
        Some((scale(a, ea - e)?, scale(b, eb - e)?))
    }

    fn same(&self, other: &Dec) -> bool {
        match self.aligned(other) {
            Some((a, b)) => a == b,
            None => self.float == other.float,
        }
    }

    /// `other` is a whole multiple of `self` (`self` non-zero).
    fn divides(&self, other: &Dec) -> bool {
        match self.aligned(other) {
            Some((a, b)) => a != 0 && b % a == 0,
            None => {
                self.float != 0.0 && {
                    let q = other.float / self.float;
                    q.is_finite() && (q - q.round()).abs() < 1e-9
                }
            }
        }
    }
}

/// The differences that make the change incompatible, as Confluent's messages.
pub(crate) fn problems(original: &Model, update: &Model) -> Vec<String> {
    let mut seen = HashSet::new();
    compare(original, update)
        .into_iter()
        .filter(|d| !d.ty.compatible())
        .filter(|d| seen.insert((d.ty, d.path.clone())))
        .map(|d| d.ty.message(&d.path))
        .collect()
}
