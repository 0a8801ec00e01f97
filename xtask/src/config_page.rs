//! deploy-hook.conf(5), generated from docs/config.md.
//!
//! The config reference is written once, in Markdown, where people read it in the source and
//! in /usr/share/doc; the man page is that text set in roff. Only what config.md uses is
//! handled: headings, paragraphs, lists, code blocks, code spans, emphasis and links. Anything
//! else (a table, raw HTML, an image) is an error rather than a page that silently drops it,
//! so that a new construct in the reference fails the drift test instead of going missing.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Parser, Tag, TagEnd};
use roff::{bold, italic, line_break, roman, Inline, Roff};

/// The reference, as the man page is built from it.
pub const SOURCE: &str = include_str!("../../docs/config.md");

/// Where the package installs docs/ (Cargo.toml `[package.metadata.deb]` assets): a link to
/// another page of docs/ is printed with this path, since a man page cannot link.
const INSTALLED_DOCS: &str = "/usr/share/doc/deploy-hook/docs";

/// The roff of deploy-hook.conf(5) for `markdown`, with `version` in its title line.
pub fn man_page(markdown: &str, version: &str) -> Result<Vec<u8>, String> {
    let mut page = Page::default();
    page.roff.control(
        "TH",
        // roff takes "" as an empty argument (the date, left out so the page is reproducible)
        [
            "deploy-hook.conf",
            "5",
            "\"\"",
            &format!("deploy-hook {version}"),
            "deploy-hook",
        ],
    );
    page.roff.control("SH", ["NAME"]);
    page.roff.text([roman(
        "deploy-hook.conf - the config file of deploy-hook, a CGI webhook receiver",
    )]);
    page.roff.control("SH", ["DESCRIPTION"]);
    for event in Parser::new(markdown) {
        page.event(event)?;
    }
    page.flush();
    Ok(page.roff.render().into_bytes())
}

#[derive(Default)]
struct Page {
    roff: Roff,
    /// The text of the paragraph, heading or list item being read.
    inlines: Vec<Inline>,
    /// Nesting of code spans, emphasis and strong: the font of the next text.
    bold: usize,
    italic: usize,
    heading: Option<HeadingLevel>,
    /// One entry per open list: the next number of an ordered one, None for bullets.
    lists: Vec<Option<u64>>,
    code: Option<String>,
    /// The destination of the open link, printed after its text.
    link: Option<String>,
}

impl Page {
    fn event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Start(tag) => self.start(tag)?,
            Event::End(tag) => self.end(tag),
            Event::Text(t) => match &mut self.code {
                Some(code) => code.push_str(&t),
                None => self.push(&t),
            },
            Event::Code(t) => self.inlines.push(bold(t.to_string())),
            Event::SoftBreak => self.inlines.push(roman(" ")),
            Event::HardBreak => self.inlines.push(line_break()),
            other => return Err(format!("docs/config.md: {other:?} has no man page form")),
        }
        Ok(())
    }

    fn start(&mut self, tag: Tag) -> Result<(), String> {
        match tag {
            Tag::Heading { level, .. } => {
                self.flush();
                self.heading = Some(level);
            }
            Tag::Paragraph => {
                self.flush();
                if self.lists.is_empty() {
                    self.roff.control("PP", []);
                }
            }
            Tag::List(first) => {
                self.flush();
                if !self.lists.is_empty() {
                    self.roff.control("RS", ["4"]);
                }
                self.lists.push(first);
            }
            Tag::Item => {
                self.flush();
                match self.lists.last_mut() {
                    Some(Some(n)) => {
                        let mark = format!("{n}.");
                        *n += 1;
                        self.roff.control("IP", [mark.as_str(), "4"]);
                    }
                    _ => {
                        self.roff.control("IP", ["\\(bu", "2"]);
                    }
                }
            }
            Tag::CodeBlock(kind) => {
                self.flush();
                if let CodeBlockKind::Indented = kind {
                    return Err("docs/config.md: use fenced code blocks".into());
                }
                self.code = Some(String::new());
            }
            Tag::Emphasis => self.italic += 1,
            Tag::Strong => self.bold += 1,
            Tag::Link { dest_url, .. } => self.link = Some(dest_url.to_string()),
            other => return Err(format!("docs/config.md: {other:?} has no man page form")),
        }
        Ok(())
    }

    fn end(&mut self, tag: TagEnd) {
        match tag {
            TagEnd::Heading(_) => {
                let text: String = self.inlines.drain(..).map(|i| plain(&i)).collect();
                match self.heading.take() {
                    // the title: NAME says it
                    Some(HeadingLevel::H1) => {}
                    Some(HeadingLevel::H2) => {
                        self.roff.control("SH", [text.to_uppercase().as_str()]);
                    }
                    _ => {
                        self.roff.control("SS", [text.as_str()]);
                    }
                }
            }
            TagEnd::Paragraph | TagEnd::Item => self.flush(),
            TagEnd::List(_) => {
                self.flush();
                self.lists.pop();
                if !self.lists.is_empty() {
                    self.roff.control("RE", []);
                }
            }
            TagEnd::CodeBlock => {
                let code = self.code.take().unwrap_or_default();
                self.roff.control("sp", []);
                self.roff.control("RS", ["4"]);
                self.roff.control("nf", []);
                for line in code.trim_end_matches('\n').split('\n') {
                    self.roff.text([roman(line)]);
                }
                self.roff.control("fi", []);
                self.roff.control("RE", []);
            }
            TagEnd::Emphasis => self.italic = self.italic.saturating_sub(1),
            TagEnd::Strong => self.bold = self.bold.saturating_sub(1),
            TagEnd::Link => {
                if let Some(dest) = self.link.take() {
                    self.after_link(&dest);
                }
            }
            _ => {}
        }
    }

    /// A man page cannot link: a link to another page of docs/ shows where that page is
    /// installed, a web link shows its address, a link inside this page shows nothing more.
    fn after_link(&mut self, dest: &str) {
        if dest.starts_with('#') {
            return;
        }
        let file = dest.split('#').next().unwrap_or(dest);
        let (name, shown) = if dest.contains("://") {
            (dest, dest.to_string())
        } else if let Some(up) = file.strip_prefix("../") {
            (up, format!("{up} in the source"))
        } else {
            (file, format!("{INSTALLED_DOCS}/{file}"))
        };
        let text: String = self.inlines.last().map(plain).unwrap_or_default();
        if text != name {
            self.inlines.push(roman(format!(" ({shown})")));
        } else if let Some(last) = self.inlines.pop() {
            // the link's text is the file's name: show the installed path instead
            self.inlines.push(match last {
                Inline::Bold(_) => bold(shown),
                Inline::Italic(_) => italic(shown),
                _ => roman(shown),
            });
        }
    }

    fn push(&mut self, text: &str) {
        let inline = if self.bold > 0 {
            bold(text)
        } else if self.italic > 0 {
            italic(text)
        } else {
            roman(text)
        };
        self.inlines.push(inline);
    }

    /// Writes the text read so far as one line of the page (a heading's waits for its end).
    fn flush(&mut self) {
        if self.inlines.is_empty() || self.heading.is_some() {
            return;
        }
        let inlines: Vec<Inline> = self.inlines.drain(..).collect();
        self.roff.text(inlines);
    }
}

fn plain(i: &Inline) -> String {
    match i {
        Inline::Roman(s) | Inline::Bold(s) | Inline::Italic(s) => s.clone(),
        Inline::LineBreak => " ".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(md: &str) -> String {
        String::from_utf8(man_page(md, "9.9").unwrap()).unwrap()
    }

    #[test]
    fn headings_paragraphs_lists_and_code_become_roff() {
        let p = page(
            "# title\n\nIntro `code` and *it*.\n\n## Every key\n\n- `nice` (default 10)\n- two\n\n\
             ```toml\nnice = 10\n.dot = 1\n```\n\n### Sub\n\n1. one\n2. two\n",
        );
        assert!(
            p.contains(".TH deploy-hook.conf 5 \"\" \"deploy-hook 9.9\" deploy-hook"),
            "{p}"
        );
        assert!(!p.contains("title"), "the title is NAME's job: {p}");
        assert!(p.contains("Intro \\fBcode\\fR and \\fIit\\fR."), "{p}");
        assert!(p.contains(".SH \"EVERY KEY\""), "{p}");
        assert!(p.contains(".IP \\(bu 2\n\\fBnice\\fR (default 10)"), "{p}");
        assert!(
            p.contains(".nf\nnice = 10\n\\&.dot = 1\n.fi"),
            "a leading dot is escaped: {p}"
        );
        assert!(p.contains(".SS Sub"), "{p}");
        assert!(p.contains(".IP 1. 4\none\n.IP 2. 4\ntwo"), "{p}");
    }

    #[test]
    fn links_show_where_the_page_is_installed() {
        let p = page(
            "See [publish.md](publish.md), [the tests](../tests/run.sh), [`nginx/site.conf`](../nginx/site.conf) \
             and [Steps](#steps).\n",
        );
        assert!(p.contains("/usr/share/doc/deploy\\-hook/docs/publish.md,"), "{p}");
        assert!(p.contains("the tests (tests/run.sh in the source)"), "{p}");
        assert!(p.contains("\\fBnginx/site.conf in the source\\fR"), "{p}");
        assert!(p.contains("and Steps."), "{p}");
    }

    #[test]
    fn what_has_no_man_page_form_is_an_error_not_a_gap() {
        assert!(man_page("<b>raw</b>\n", "1").is_err());
        assert!(man_page("    indented code\n", "1").is_err());
    }
}
