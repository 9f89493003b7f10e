//! The settings of the sshd processes listening on the audited server, read from the script's
//! `sshd` section: per listener, `sshd -T` when it could run, else its `-f` file with the
//! `Include`s expanded (first value wins, as in sshd; Match blocks are not evaluated). A file the
//! audit user could not read, or one changed after the sshd loaded it, leaves the settings it may
//! hold unknown instead of graded as sshd's defaults.

use super::sections::Sections;

/// What the audit knows of one setting of one listener.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Setting {
    /// Not set in anything the audit read: sshd's compiled-in default applies.
    #[default]
    Unset,
    Set(String),
    /// May be set in a file the audit user could not read (named here).
    Hidden(String),
}

/// One listening sshd and the settings it runs with.
#[derive(Debug, Default, PartialEq)]
pub struct Listener {
    pub pid: String,
    pub config: String,
    /// "sshd -T" or "config files".
    pub source: &'static str,
    pub permit_root_login: Setting,
    pub password_authentication: Setting,
    /// KbdInteractiveAuthentication (or its old name ChallengeResponseAuthentication).
    pub kbd_interactive: Setting,
    pub use_pam: Setting,
    pub permit_empty_passwords: Setting,
    pub max_auth_tries: Setting,
    /// AllowUsers / AllowGroups: every entry of every line (they add up), space-separated.
    pub allow_users: Setting,
    pub allow_groups: Setting,
    pub ports: Vec<u16>,
    /// An unreadable file that may add `Port` lines.
    pub ports_hidden: Option<String>,
    /// `-p` on the command line: sshd ignores every `Port` line then.
    pub ports_from_cmdline: bool,
    /// A config file changed after this sshd (re)loaded: what runs is not what is on disk.
    pub stale: Option<String>,
}

impl Listener {
    /// The value sshd uses, or why the audit cannot tell.
    pub fn get<'a>(&'a self, setting: &'a Setting, default: &'a str) -> Result<&'a str, String> {
        self.fresh()?;
        match setting {
            Setting::Unset => Ok(default),
            Setting::Set(v) => Ok(v),
            Setting::Hidden(file) => Err(format!("{file} is not readable by the audit user")),
        }
    }

    /// Whether what is on disk is what this sshd runs with.
    fn fresh(&self) -> Result<(), String> {
        match &self.stale {
            Some(file) => Err(format!(
                "{file} changed after sshd (pid {}) loaded it; reload sshd so what runs can be read",
                self.pid
            )),
            None => Ok(()),
        }
    }

    /// The ports it listens on (22 when no Port line), or why the audit cannot tell.
    pub fn listen_ports(&self) -> Result<Vec<u16>, String> {
        self.fresh()?;
        if let Some(file) = &self.ports_hidden {
            return Err(format!("{file} is not readable by the audit user"));
        }
        Ok(if self.ports.is_empty() {
            vec![22]
        } else {
            self.ports.clone()
        })
    }

    fn apply(&mut self, line: &str, blind: Option<&str>) {
        let (key, rest) = split_keyword(line);
        let value = rest
            .split_whitespace()
            .next()
            .map(|v| v.to_ascii_lowercase());
        let list = match key.as_str() {
            "allowusers" => Some(&mut self.allow_users),
            "allowgroups" => Some(&mut self.allow_groups),
            _ => None,
        };
        if let Some(slot) = list {
            // Entries add up, and an unreadable file can only restrict further: what was read
            // stands. Names keep their case.
            let entries = rest.split_whitespace().collect::<Vec<_>>().join(" ");
            if entries.is_empty() {
                return;
            }
            *slot = match std::mem::take(slot) {
                Setting::Set(v) if v.len() < MAX_LIST => Setting::Set(format!("{v} {entries}")),
                Setting::Set(v) => Setting::Set(v),
                _ => Setting::Set(entries),
            };
            return;
        }
        let slot = match key.as_str() {
            "permitrootlogin" => &mut self.permit_root_login,
            "passwordauthentication" => &mut self.password_authentication,
            "kbdinteractiveauthentication" | "challengeresponseauthentication" => {
                &mut self.kbd_interactive
            }
            "usepam" => &mut self.use_pam,
            "permitemptypasswords" => &mut self.permit_empty_passwords,
            "maxauthtries" => &mut self.max_auth_tries,
            "port" if self.ports_from_cmdline => return,
            "port" => {
                if let Some(p) = value.and_then(|v| v.parse().ok()) {
                    // All Port lines apply (sshd listens on each); sshd itself refuses more
                    // than MAX_PORTS, so a longer list is not a real one.
                    if self.ports.len() < MAX_PORTS && !self.ports.contains(&p) {
                        self.ports.push(p);
                    }
                }
                return;
            }
            _ => return,
        };
        // The first value wins; after an unreadable file, that file may have set it first.
        if let (Setting::Unset, Some(v)) = (&slot, value) {
            *slot = match blind {
                Some(file) => Setting::Hidden(file.to_string()),
                None => Setting::Set(v),
            };
        }
    }

    /// Settings left unset after an unreadable file may be set in it.
    fn hide_unset(&mut self, file: &str) {
        for slot in [
            &mut self.permit_root_login,
            &mut self.password_authentication,
            &mut self.kbd_interactive,
            &mut self.use_pam,
            &mut self.permit_empty_passwords,
            &mut self.max_auth_tries,
            &mut self.allow_users,
            &mut self.allow_groups,
        ] {
            if *slot == Setting::Unset {
                *slot = Setting::Hidden(file.to_string());
            }
        }
        if !self.ports_from_cmdline {
            self.ports_hidden = Some(file.to_string());
        }
    }
}

/// Every listening sshd the script saw (at most MAX_LISTENERS).
#[derive(Debug, Default, PartialEq)]
pub struct SshdSettings {
    pub listeners: Vec<Listener>,
}

impl SshdSettings {
    pub fn from_sections(s: &Sections<'_>) -> SshdSettings {
        let mut listeners = Vec::new();
        let mut block: Option<(&str, Vec<&str>)> = None;
        for line in s.get("sshd").unwrap_or("").lines() {
            if let Some(header) = line.strip_prefix("listener ") {
                if let Some((h, lines)) = block.take() {
                    listeners.push(parse_listener(h, &lines));
                }
                if listeners.len() == MAX_LISTENERS {
                    break;
                }
                block = Some((header, Vec::new()));
            } else if let Some((_, lines)) = block.as_mut() {
                lines.push(line);
            }
        }
        if let Some((h, lines)) = block {
            listeners.push(parse_listener(h, &lines));
        }
        SshdSettings { listeners }
    }

    /// The ports the listeners are known to listen on.
    pub fn ports(&self) -> Vec<u16> {
        let mut out: Vec<u16> = Vec::new();
        for p in self
            .listeners
            .iter()
            .filter_map(|l| l.listen_ports().ok())
            .flatten()
        {
            if out.len() < MAX_PORTS && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

/// OpenSSH's own limit on `Port` lines (servconf.h MAX_PORTS).
const MAX_PORTS: usize = 256;
/// The longest AllowUsers/AllowGroups list kept (characters); the rest is not needed to grade.
const MAX_LIST: usize = 4096;
/// More listening sshds than any server runs; a longer list is cut.
const MAX_LISTENERS: usize = 16;
/// Lines read plus file names matched while expanding `Include`s; a real sshd_config with its
/// included files costs a few hundred.
const INCLUDE_BUDGET: usize = 20_000;
/// Longest file name segment a glob is matched against (NAME_MAX).
const MAX_SEGMENT: usize = 255;

/// One file the script dumped (or could not read).
struct File<'a> {
    path: &'a str,
    readable: bool,
    mtime: Option<i64>,
    lines: Vec<&'a str>,
}

/// `pid=… config=… loaded=…` and the lines after it.
fn parse_listener(header: &str, lines: &[&str]) -> Listener {
    let field = |k: &str| {
        header
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("-")
    };
    let mut l = Listener {
        pid: field("pid").to_string(),
        config: field("config").to_string(),
        ..Default::default()
    };
    let loaded: Option<i64> = field("loaded").parse().ok();
    // The listener's own -o/-p options come first: sshd keeps the first value it reads.
    for option in lines.iter().filter_map(|x| x.strip_prefix("option ")) {
        l.apply(option, None);
    }
    let cmdline_ports: Vec<&str> = lines
        .iter()
        .filter_map(|x| x.strip_prefix("option_port "))
        .collect();
    for port in &cmdline_ports {
        l.apply(&format!("Port {port}"), None);
    }
    l.ports_from_cmdline = !cmdline_ports.is_empty();
    let effective_at = lines.iter().position(|x| *x == "effective sshd -T");
    let files_at = lines
        .iter()
        .position(|x| x.starts_with("#siembox-"))
        .unwrap_or(lines.len());
    let files = parse_files(&lines[files_at..]);
    l.stale = files
        .iter()
        .find(|f| matches!((f.mtime, loaded), (Some(m), Some(at)) if m > at))
        .map(|f| f.path.to_string());
    let effective = effective_at
        .map(|i| &lines[(i + 1).min(files_at)..files_at])
        .filter(|e| e.iter().any(|x| !x.trim().is_empty()));
    if let Some(effective) = effective {
        l.source = "sshd -T";
        for line in effective {
            l.apply(line, None);
        }
        return l;
    }
    l.source = "config files";
    let config = l.config.clone();
    match files.iter().find(|f| f.path == config) {
        Some(main) if main.readable => {
            let mut walk = Walk {
                in_match: false,
                blind: None,
                budget: INCLUDE_BUDGET,
            };
            walk.file(&mut l, &main.lines, &files, 0);
            if let Some(file) = walk.blind {
                l.hide_unset(&file);
            }
        }
        _ => l.hide_unset(&config),
    }
    l
}

fn parse_files<'a>(lines: &[&'a str]) -> Vec<File<'a>> {
    let mut files: Vec<File<'a>> = Vec::new();
    for line in lines {
        if let Some(path) = line.strip_prefix("#siembox-file ") {
            files.push(File {
                path: path.trim(),
                readable: true,
                mtime: None,
                lines: Vec::new(),
            });
        } else if let Some(path) = line.strip_prefix("#siembox-unreadable ") {
            files.push(File {
                path: path.trim(),
                readable: false,
                mtime: None,
                lines: Vec::new(),
            });
        } else if let Some(m) = line.strip_prefix("#siembox-mtime ") {
            if let Some(f) = files.last_mut() {
                f.mtime = m.trim().parse().ok();
            }
        } else if let Some(f) = files.last_mut() {
            f.lines.push(line);
        }
    }
    files
}

/// State of one walk through a config file and its includes.
struct Walk {
    in_match: bool,
    /// The first unreadable file reached outside Match blocks.
    blind: Option<String>,
    budget: usize,
}

impl Walk {
    fn file(&mut self, l: &mut Listener, lines: &[&str], files: &[File<'_>], depth: usize) {
        for line in lines {
            // Files that include each other several times fan out exponentially: stop at a
            // budget no real configuration comes near.
            if self.budget == 0 {
                return;
            }
            self.budget -= 1;
            let (key, rest) = split_keyword(line);
            match key.as_str() {
                "match" => self.in_match = true,
                "include" if !self.in_match && depth < 8 => {
                    for pattern in rest.split_whitespace() {
                        // Each pattern is matched against every file.
                        if self.budget < files.len() {
                            self.budget = 0;
                            return;
                        }
                        self.budget -= files.len();
                        self.include(l, pattern, files, depth);
                    }
                }
                _ if !self.in_match => l.apply(line, self.blind.as_deref()),
                _ => {}
            }
        }
    }

    fn include(&mut self, l: &mut Listener, pattern: &str, files: &[File<'_>], depth: usize) {
        let pattern = if pattern.starts_with('/') {
            pattern.to_string()
        } else {
            format!("/etc/ssh/{pattern}")
        };
        // The script names a directory it cannot list by the pattern itself.
        let mut matched: Vec<&File<'_>> = files
            .iter()
            .filter(|f| f.path == pattern || glob_match(&pattern, f.path))
            .collect();
        matched.sort_by_key(|f| f.path);
        matched.dedup_by_key(|f| f.path);
        for f in matched {
            if f.readable {
                self.file(l, &f.lines, files, depth + 1);
            } else if self.blind.is_none() {
                self.blind = Some(f.path.to_string());
            }
        }
    }
}

fn split_keyword(line: &str) -> (String, &str) {
    let t = line.trim();
    let end = t
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(t.len());
    let rest = t[end..].trim_start_matches(|c: char| c.is_whitespace() || c == '=');
    (t[..end].to_ascii_lowercase(), rest)
}

/// `*` and `?` globbing, enough for sshd's `Include` patterns. Neither crosses a `/`, so the
/// match goes segment by segment; within one, a `*` backtracks only to its latest position, which
/// keeps the work at length × length of a segment whatever the server sent.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (mut ps, mut ts) = (pattern.split('/'), text.split('/'));
    loop {
        match (ps.next(), ts.next()) {
            (None, None) => return true,
            (Some(p), Some(t)) if p.len() <= MAX_SEGMENT && t.len() <= MAX_SEGMENT => {
                if !segment_match(p.as_bytes(), t.as_bytes()) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

fn segment_match(p: &[u8], t: &[u8]) -> bool {
    let (mut pi, mut ti) = (0, 0);
    // The latest `*` seen and where in the text it currently stops.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> SshdSettings {
        SshdSettings::from_sections(&Sections::parse(&format!(
            "==siembox:sshd==\n{body}==siembox:end==\n"
        )))
    }

    #[test]
    fn sshd_t_output_wins_over_files() {
        let s = parse("listener pid=9 config=/etc/ssh/sshd_config loaded=100\neffective sshd -T\npermitrootlogin no\npasswordauthentication no\nport 22\nport 2200\n#siembox-file /etc/ssh/sshd_config\n#siembox-mtime 50\nPermitRootLogin yes\n");
        let l = &s.listeners[0];
        assert_eq!((l.source, l.ports.clone()), ("sshd -T", vec![22, 2200]));
        assert_eq!(l.permit_root_login, Setting::Set("no".into()));
        assert_eq!(l.stale, None);
    }

    #[test]
    fn includes_expand_in_place_first_value_wins_match_ignored() {
        let s = parse("listener pid=1 config=/etc/ssh/sshd_config loaded=-\n#siembox-file /etc/ssh/sshd_config\nInclude sshd_config.d/*.conf\nPermitRootLogin yes\nMatch User bob\n  PasswordAuthentication yes\n#siembox-file /etc/ssh/sshd_config.d/10-hard.conf\nPermitRootLogin no\nPasswordAuthentication no\nPort 2222\n");
        let l = &s.listeners[0];
        assert_eq!(l.permit_root_login, Setting::Set("no".into()));
        assert_eq!(l.password_authentication, Setting::Set("no".into()));
        assert_eq!(l.kbd_interactive, Setting::Unset);
        assert_eq!(l.ports, vec![2222]);
    }

    #[test]
    fn an_unreadable_include_hides_what_was_not_set_before_it() {
        let s = parse("listener pid=1 config=/etc/ssh/sshd_config loaded=-\n#siembox-file /etc/ssh/sshd_config\nPasswordAuthentication no\nInclude /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin no\n#siembox-unreadable /etc/ssh/sshd_config.d/*.conf\n");
        let l = &s.listeners[0];
        assert_eq!(l.password_authentication, Setting::Set("no".into()));
        let hidden = Setting::Hidden("/etc/ssh/sshd_config.d/*.conf".into());
        assert_eq!(l.permit_root_login, hidden);
        assert_eq!(l.use_pam, hidden);
        assert!(l.listen_ports().is_err());
    }

    #[test]
    fn a_file_newer_than_the_listener_makes_it_stale() {
        let s = parse("listener pid=7 config=/x loaded=100\n#siembox-file /x\n#siembox-mtime 101\nPermitRootLogin no\nlistener pid=8 config=/y loaded=100\n#siembox-file /y\n#siembox-mtime 100\n");
        assert_eq!(s.listeners[0].stale.as_deref(), Some("/x"));
        assert!(s.listeners[0]
            .get(&s.listeners[0].permit_root_login, "")
            .is_err());
        assert_eq!(s.listeners[1].stale, None);
        assert_eq!(s.ports(), vec![22]);
    }

    #[test]
    fn command_line_options_win_over_the_file() {
        let s = parse("listener pid=3 config=/x loaded=-\noption PasswordAuthentication=yes\noption Port=2022\n#siembox-file /x\nPasswordAuthentication no\nPort 22\n");
        let l = &s.listeners[0];
        assert_eq!(l.password_authentication, Setting::Set("yes".into()));
        assert_eq!(l.ports, vec![2022, 22]);
        // -p replaces the file's ports, even those an unreadable file might add.
        let s = parse("listener pid=3 config=/x loaded=-\noption_port 2200\n#siembox-file /x\nPort 22\nInclude /d/*\n#siembox-unreadable /d/*\n");
        assert_eq!(s.listeners[0].listen_ports(), Ok(vec![2200]));
    }

    #[test]
    fn allow_lists_add_up_and_hardening_settings_are_read() {
        let s = parse("listener pid=1 config=/x loaded=-\noption MaxAuthTries=10\n#siembox-file /x\nAllowUsers alice Bob\nMaxAuthTries 3\nPermitEmptyPasswords yes\nInclude /d/*\nAllowUsers carol\n#siembox-unreadable /d/*\n");
        let l = &s.listeners[0];
        assert_eq!(l.allow_users, Setting::Set("alice Bob carol".into()));
        assert_eq!(l.allow_groups, Setting::Hidden("/d/*".into()));
        assert_eq!(l.max_auth_tries, Setting::Set("10".into()));
        assert_eq!(l.permit_empty_passwords, Setting::Set("yes".into()));
        // sshd -T prints one line per entry.
        let s = parse("listener pid=1 config=/x loaded=-\neffective sshd -T\nmaxauthtries 6\npermitemptypasswords no\nallowgroups ssh-users\nallowgroups admins\n");
        let l = &s.listeners[0];
        assert_eq!(l.allow_groups, Setting::Set("ssh-users admins".into()));
        assert_eq!(l.allow_users, Setting::Unset);
    }

    #[test]
    fn globs() {
        assert!(glob_match(
            "/etc/ssh/sshd_config.d/*.conf",
            "/etc/ssh/sshd_config.d/a.conf"
        ));
        assert!(!glob_match("/etc/ssh/*.conf", "/etc/ssh/d/a.conf"));
        assert!(glob_match("/etc/ssh/?0-*", "/etc/ssh/10-"));
        assert!(
            !glob_match("/etc/ssh?a", "/etc/ssh/a"),
            "? stops at / as in glob(3)"
        );
        assert!(glob_match("/a/*x*y*", "/a/0x1y"));
        assert!(!glob_match("/a/*x*y*z", "/a/0x1y"));
    }

    #[test]
    fn includes_that_include_themselves_stop_at_the_budget() {
        let s = parse(&format!(
            "listener pid=1 config=/etc/ssh/sshd_config loaded=-\n#siembox-file /etc/ssh/sshd_config\nPort 2222\nInclude {}\nPermitRootLogin no\n",
            ["sshd_config"; 10].join(" ")
        ));
        assert_eq!(s.listeners[0].ports, vec![2222]);
        assert_eq!(s.listeners[0].permit_root_login, Setting::Set("no".into()));
    }
}
