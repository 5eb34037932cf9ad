//! MCP protocol versions this gateway speaks.

/// A supported protocol version, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ProtocolVersion {
    /// HTTP+SSE transport era.
    V2024_11_05 = 0,
    /// Streamable HTTP, JSON-RPC batches.
    V2025_03_26 = 1,
    /// `MCP-Protocol-Version` header, structured content, no batches.
    V2025_06_18 = 2,
    /// 403 on bad Origin, SSE polling, icons.
    V2025_11_25 = 3,
}

impl ProtocolVersion {
    /// Every supported version, newest first (the order `initialize` negotiates in).
    pub const ALL: [ProtocolVersion; 4] = [Self::V2025_11_25, Self::V2025_06_18, Self::V2025_03_26, Self::V2024_11_05];
    /// The newest supported version.
    pub const LATEST: ProtocolVersion = Self::V2025_11_25;
    /// Assumed when a request carries no `MCP-Protocol-Version` header.
    pub const ASSUMED: ProtocolVersion = Self::V2025_03_26;

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2024_11_05 => "2024-11-05",
            Self::V2025_03_26 => "2025-03-26",
            Self::V2025_06_18 => "2025-06-18",
            Self::V2025_11_25 => "2025-11-25",
        }
    }

    /// Parses a wire string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub(crate) fn from_index(i: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|v| *v as u8 == i)
    }

    /// Whether JSON-RPC batches are allowed (2025-03-26 only; 2024-11-05 follows JSON-RPC
    /// 2.0 which allows them too).
    pub fn allows_batches(self) -> bool {
        self <= Self::V2025_03_26
    }

    /// Whether `structuredContent`, `outputSchema` and `title` exist.
    pub fn has_structured_content(self) -> bool {
        self >= Self::V2025_06_18
    }

    /// The version `initialize` answers for a requested one: the same if supported, else
    /// the latest.
    pub fn negotiate(requested: &str) -> Self {
        Self::parse(requested).unwrap_or(Self::LATEST)
    }

    /// Comma-separated list for error messages.
    pub fn supported_list() -> &'static str {
        "2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05"
    }
}
