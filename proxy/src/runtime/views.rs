//! Per-caller `tools/list` pages for routes with per-tool rules.
//!
//! Each tool's definition is serialized once at build, in both shapes; a caller's pages
//! are those fragments joined for the tools its mask allows, built once per distinct mask
//! and kept (callers with the same rights share them), so no request serializes a list.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::policy::{Allowed, ToolMask};
use crate::tools::ToolDef;

/// `tools/list` pages in the current and the pre-2025-06-18 shape.
pub struct PageSet {
    /// Current shape.
    pub modern: Vec<Box<RawValue>>,
    /// Without `title` and `outputSchema`.
    pub legacy: Vec<Box<RawValue>>,
}

/// Most distinct masks whose pages are kept per route; beyond it pages are built per call.
const MAX_VIEWS: usize = 1024;

/// Serialized tool fragments and the pages built from them per mask.
#[derive(Default)]
pub struct Views {
    fragments: Vec<(serde_json::Value, serde_json::Value)>,
    built: dashmap::DashMap<Arc<ToolMask>, Arc<PageSet>, foldhash::fast::RandomState>,
}

impl Views {
    /// Fragments for `defs`.
    pub fn new(defs: &[ToolDef]) -> Result<Self, serde_json::Error> {
        let mut fragments = Vec::with_capacity(defs.len());
        for d in defs {
            let modern = serde_json::to_value(d)?;
            let mut legacy = modern.clone();
            super::build::to_legacy_shape(&mut legacy);
            fragments.push((modern, legacy));
        }
        Ok(Views { fragments, built: Default::default() })
    }

    /// The pages of the tools `mask` allows.
    pub fn pages(&self, mask: &Arc<ToolMask>) -> Arc<PageSet> {
        if let Some(p) = self.built.get(mask) {
            return p.clone();
        }
        let pages = Arc::new(self.build(mask));
        if self.built.len() < MAX_VIEWS {
            self.built.insert(mask.clone(), pages.clone());
        }
        pages
    }

    fn build(&self, mask: &ToolMask) -> PageSet {
        let chosen: Vec<usize> = mask.iter().filter(|i| *i < self.fragments.len()).collect();
        let chunks: Vec<&[usize]> = if chosen.is_empty() { vec![&chosen[..0]] } else { chosen.chunks(super::PAGE_SIZE).collect() };
        let mut set = PageSet { modern: Vec::with_capacity(chunks.len()), legacy: Vec::with_capacity(chunks.len()) };
        for (i, chunk) in chunks.iter().enumerate() {
            let next = (i + 1 < chunks.len()).then(|| crate::mcp::cursor::encode((i + 1) * super::PAGE_SIZE));
            let modern: Vec<serde_json::Value> = chunk.iter().map(|t| self.fragments[*t].0.clone()).collect();
            let legacy: Vec<serde_json::Value> = chunk.iter().map(|t| self.fragments[*t].1.clone()).collect();
            // Serializing values that came from serde cannot fail.
            if let (Ok(m), Ok(l)) = (super::build::page_json(&modern, next.as_deref()), super::build::page_json(&legacy, next.as_deref())) {
                set.modern.push(m);
                set.legacy.push(l);
            }
        }
        set
    }
}

/// The pages a caller sees: the route's own, or its view's.
pub enum Pages<'a> {
    /// Every tool.
    All(&'a [Box<RawValue>]),
    /// A caller's view.
    View(Arc<PageSet>, bool),
}

impl Pages<'_> {
    /// The pages.
    pub fn get(&self) -> &[Box<RawValue>] {
        match self {
            Pages::All(p) => p,
            Pages::View(set, true) => &set.modern,
            Pages::View(set, false) => &set.legacy,
        }
    }
}

impl super::Route {
    /// The `tools/list` pages a caller allowed `allowed` sees, in the current shape or not.
    pub fn pages_for(&self, allowed: &Allowed, modern: bool) -> Pages<'_> {
        match allowed {
            Allowed::All => Pages::All(if modern { &self.pages } else { &self.legacy_pages }),
            Allowed::Some(mask) => Pages::View(self.views.pages(mask), modern),
        }
    }
}
