//! The topic tree, pure: `PREFIX/<site>/{status,state,health,event}`,
//! `PREFIX/<site>/cmd/<name>` (and `.../reply`), fleet-wide
//! `PREFIX/all/cmd/<name>`, a group's `PREFIX/group/<group>/cmd/<name>`;
//! the NOC's retained schedules at `PREFIX/<site>/schedule`,
//! `PREFIX/group/<group>/schedule` and `PREFIX/all/holidays`.

/// The site segment that addresses every box.
pub const ALL: &str = "all";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    site: String,
}

/// Where an incoming command was addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// This box.
    Site,
    /// Every box (`PREFIX/all/cmd/<name>`).
    Fleet,
    /// A group this box belongs to (`[schedule] groups`), every member
    /// answering for itself.
    Group(String),
}

/// Where group commands and schedules live: `PREFIX/group/<group>/...`.
pub const GROUP: &str = "group";

/// Why an incoming topic is not a command for this box.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic '{0}' is not under this box's command tree")]
    NotCommand(String),
    #[error("topic '{topic}' addresses site '{site}', not this box")]
    OtherSite { topic: String, site: String },
    #[error("topic '{topic}' addresses group '{group}', which this box is not in")]
    OtherGroup { topic: String, group: String },
}

impl Topics {
    pub fn new(prefix: &str, site: &str) -> Self {
        Self {
            prefix: prefix.trim_matches('/').to_owned(),
            site: site.to_owned(),
        }
    }

    pub fn site(&self) -> &str {
        &self.site
    }

    fn leaf(&self, leaf: &str) -> String {
        format!("{}/{}/{leaf}", self.prefix, self.site)
    }

    pub fn status(&self) -> String {
        self.leaf("status")
    }
    pub fn state(&self) -> String {
        self.leaf("state")
    }
    pub fn health(&self) -> String {
        self.leaf("health")
    }
    pub fn event(&self) -> String {
        self.leaf("event")
    }

    /// Where a box publishes the reply for clients without MQTT 5.
    pub fn reply(&self, name: &str) -> String {
        self.leaf(&format!("cmd/{name}/reply"))
    }

    /// The subscriptions: this box's commands and fleet-wide ones.
    /// The box's commands, the fleet's, and each of its groups'.
    pub fn command_filters(&self, groups: &[String]) -> Vec<String> {
        let mut out = vec![
            format!("{}/{}/cmd/+", self.prefix, self.site),
            format!("{}/{ALL}/cmd/+", self.prefix),
        ];
        out.extend(
            groups
                .iter()
                .map(|g| format!("{}/{GROUP}/{g}/cmd/+", self.prefix)),
        );
        out
    }

    /// A command topic for `site` (NOC side).
    /// The retained schedules the box reads: its own, each of its groups',
    /// and the province's holidays.
    pub fn schedule_filters(&self, groups: &[String]) -> Vec<String> {
        let mut out = vec![
            self.leaf("schedule"),
            format!("{}/{ALL}/holidays", self.prefix),
        ];
        out.extend(groups.iter().map(|g| Self::group_schedule(&self.prefix, g)));
        out
    }

    pub fn group_schedule(prefix: &str, group: &str) -> String {
        format!("{}/{GROUP}/{group}/schedule", prefix.trim_matches('/'))
    }

    pub fn holidays(prefix: &str) -> String {
        format!("{}/{ALL}/holidays", prefix.trim_matches('/'))
    }

    pub fn schedule_for(prefix: &str, site: &str) -> String {
        format!("{}/{site}/schedule", prefix.trim_matches('/'))
    }

    /// Which schedule a topic carries: `site`, `group/NAME` or `holidays`;
    /// `None` for any other topic.
    pub fn parse_schedule(&self, topic: &str, groups: &[String]) -> Option<String> {
        if topic == self.leaf("schedule") {
            return Some("site".into());
        }
        if topic == Self::holidays(&self.prefix) {
            return Some("holidays".into());
        }
        groups
            .iter()
            .find(|g| topic == Self::group_schedule(&self.prefix, g))
            .map(|g| format!("group/{g}"))
    }

    pub fn command_for(prefix: &str, site: &str, name: &str) -> String {
        format!("{}/{site}/cmd/{name}", prefix.trim_matches('/'))
    }

    /// Split an incoming topic into its scope and command name.
    pub fn parse_command(
        &self,
        topic: &str,
        groups: &[String],
    ) -> Result<(Scope, String), TopicError> {
        let not = || TopicError::NotCommand(topic.to_owned());
        let rest = topic
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(not)?;
        if let Some(g) = rest.strip_prefix(GROUP).and_then(|r| r.strip_prefix('/')) {
            let mut parts = g.split('/');
            let (Some(group), Some("cmd"), Some(name), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(not());
            };
            if !groups.iter().any(|m| m == group) {
                return Err(TopicError::OtherGroup {
                    topic: topic.to_owned(),
                    group: group.to_owned(),
                });
            }
            if name.is_empty() {
                return Err(not());
            }
            return Ok((Scope::Group(group.to_owned()), name.to_owned()));
        }
        let mut parts = rest.split('/');
        let (Some(site), Some("cmd"), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(not());
        };
        let scope = if site == self.site {
            Scope::Site
        } else if site == ALL {
            Scope::Fleet
        } else {
            return Err(TopicError::OtherSite {
                topic: topic.to_owned(),
                site: site.to_owned(),
            });
        };
        if name.is_empty() {
            return Err(not());
        }
        Ok((scope, name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree() {
        let t = Topics::new("diemcau/v1/", "xa-01");
        assert_eq!(t.status(), "diemcau/v1/xa-01/status");
        assert_eq!(
            t.reply("diagnostics"),
            "diemcau/v1/xa-01/cmd/diagnostics/reply"
        );
        assert_eq!(t.command_filters(&[])[1], "diemcau/v1/all/cmd/+");
        assert_eq!(
            t.command_filters(&["toan-tinh".into()])[2],
            "diemcau/v1/group/toan-tinh/cmd/+"
        );
    }

    #[test]
    fn parses_command_topics() {
        let t = Topics::new("diemcau/v1", "xa-01");
        assert_eq!(
            t.parse_command("diemcau/v1/xa-01/cmd/session.start", &[]),
            Ok((Scope::Site, "session.start".into()))
        );
        assert_eq!(
            t.parse_command("diemcau/v1/all/cmd/rebirth", &[]),
            Ok((Scope::Fleet, "rebirth".into()))
        );
        assert!(matches!(
            t.parse_command("diemcau/v1/xa-02/cmd/rebirth", &[]),
            Err(TopicError::OtherSite { .. })
        ));
        assert!(t
            .parse_command("diemcau/v1/xa-01/cmd/x/reply", &[])
            .is_err());
        assert!(t.parse_command("other/xa-01/cmd/x", &[]).is_err());
        assert!(t.parse_command("diemcau/v1/xa-01/cmd/", &[]).is_err());
    }

    #[test]
    fn parses_group_commands_and_schedules_of_its_own_groups_only() {
        let t = Topics::new("diemcau/v1", "xa-01");
        let groups = ["huyen-a".to_owned()];
        assert_eq!(
            t.parse_command("diemcau/v1/group/huyen-a/cmd/session.start", &groups),
            Ok((Scope::Group("huyen-a".into()), "session.start".into()))
        );
        assert!(matches!(
            t.parse_command("diemcau/v1/group/huyen-b/cmd/session.start", &groups),
            Err(TopicError::OtherGroup { .. })
        ));
        assert!(t
            .parse_command("diemcau/v1/group/huyen-a/cmd/x/reply", &groups)
            .is_err());
        assert_eq!(
            t.parse_schedule("diemcau/v1/group/huyen-a/schedule", &groups),
            Some("group/huyen-a".into())
        );
        assert_eq!(
            t.parse_schedule("diemcau/v1/group/huyen-b/schedule", &groups),
            None
        );
        assert_eq!(
            t.parse_schedule("diemcau/v1/xa-01/schedule", &groups),
            Some("site".into())
        );
        assert_eq!(
            t.parse_schedule("diemcau/v1/all/holidays", &groups),
            Some("holidays".into())
        );
    }
}
