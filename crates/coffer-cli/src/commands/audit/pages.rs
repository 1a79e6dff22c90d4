//! Reading the audit log page by page. The server answers at most
//! [`coffer_api::audit::MAX_PAGE`] entries a request, so the readers here ask for pages
//! of at most that and go on until a page comes back short: a log of any length is read
//! whole, and neither side holds more than one page of entries at a time.
//!
//! The next page starts at `from` plus the lines read. The store keeps indices
//! contiguous; a log with a gap (an entry deleted) is what `verify` reports, at the gap.

use clap::Args;
use coffer_api::audit::MAX_PAGE;
use coffer_client::Client;

/// The page size, hidden: tests use small pages to cross page boundaries on a short log.
#[derive(Args, Clone, Copy, Debug)]
pub struct PageArgs {
    /// Entries per request (1 to the server's page size).
    #[arg(
        long,
        hide = true,
        default_value_t = MAX_PAGE,
        value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE)
    )]
    page_size: u64,
}

/// The entries from `from`, one page per [`Pages::next`].
pub struct Pages<'a> {
    client: &'a Client,
    next: u64,
    /// Entries still wanted (`None`: to the end of the log).
    remaining: Option<u64>,
    page: u64,
    done: bool,
}

impl<'a> Pages<'a> {
    /// Reads from index `from`, at most `limit` entries (all when `None`).
    pub fn new(client: &'a Client, from: u64, limit: Option<u64>, page: PageArgs) -> Self {
        Self {
            client,
            next: from,
            remaining: limit,
            page: page.page_size,
            done: false,
        }
    }

    /// The next page as JSON lines; `None` once the log (or the limit) is exhausted.
    pub async fn next(&mut self) -> anyhow::Result<Option<String>> {
        let ask = self.remaining.map_or(self.page, |r| r.min(self.page));
        if self.done || ask == 0 {
            return Ok(None);
        }
        let text = self.client.audit_entries(self.next, ask).await?;
        let got = text.lines().count() as u64;
        self.next += got;
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(got);
        }
        // A short page is the end of the log (as it stood when the page was read).
        self.done = got < ask;
        Ok((got > 0).then_some(text))
    }
}
