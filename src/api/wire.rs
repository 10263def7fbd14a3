//! The Team Admin API's JSON, as documented (../shared/reference/
//! team-admin-api.md), read leniently: unknown fields are ignored and
//! optional ones may be missing, because the beta's full schemas are not
//! published. These types never leave `api`; callers get `model` types.

use serde::{Deserialize, Serialize};

use crate::model::{self, AssignmentType, Email, ProductId, TeamId, UserId};

/// `{ "data": [...], "pagination": { "cursor", "hasMore" } }`.
#[derive(Debug, Deserialize)]
pub(crate) struct Page<T> {
    pub data: Vec<T>,
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pagination {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Team {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct User {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

impl From<User> for model::TeamUser {
    fn from(u: User) -> Self {
        model::TeamUser {
            id: UserId::from(u.id),
            email: Email::from_observed(&u.email),
            first_name: u.first_name,
            last_name: u.last_name,
            role: u.role,
        }
    }
}

/// Add Team User may answer with the user, or the user wrapped in `data`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum UserOrWrapped {
    Wrapped { data: User },
    Plain(User),
}

impl UserOrWrapped {
    pub fn into_user(self) -> User {
        match self {
            UserOrWrapped::Wrapped { data } | UserOrWrapped::Plain(data) => data,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewUser<'a> {
    pub email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<&'a str>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pool {
    pub product_id: String,
    #[serde(default)]
    pub product_name: String,
    #[serde(default)]
    pub total_quantity: Option<u64>,
    #[serde(default)]
    pub assigned_quantity: Option<u64>,
    #[serde(default)]
    pub unlimited: bool,
    #[serde(default)]
    pub start_date: Option<jiff::Timestamp>,
    #[serde(default)]
    pub end_date: Option<jiff::Timestamp>,
}

impl From<Pool> for model::ProductPool {
    fn from(p: Pool) -> Self {
        model::ProductPool {
            product_id: ProductId(p.product_id),
            product_name: p.product_name,
            total_quantity: p.total_quantity,
            assigned_quantity: p.assigned_quantity,
            unlimited: p.unlimited,
            start_date: p.start_date,
            end_date: p.end_date,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Assignment {
    pub user_id: String,
    pub product_id: String,
    /// `DIRECT` is documented; inherited values are not, so anything else
    /// reads as inherited.
    #[serde(default)]
    pub assignment_type: Option<String>,
}

impl From<Assignment> for model::Assignment {
    fn from(a: Assignment) -> Self {
        let assignment_type = match a.assignment_type.as_deref() {
            Some("DIRECT") => AssignmentType::Direct,
            Some("GROUP") => AssignmentType::Group,
            Some("TEAM") => AssignmentType::Team,
            _ => AssignmentType::Inherited,
        };
        model::Assignment {
            user_id: UserId::from(a.user_id),
            product_id: ProductId(a.product_id),
            assignment_type,
        }
    }
}

/// `{ "data": [...] }`: List Assignments is not paginated.
#[derive(Debug, Deserialize)]
pub(crate) struct AssignmentList {
    pub data: Vec<Assignment>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NewAssignment<'a> {
    pub user_id: &'a str,
    pub product_id: &'a str,
    pub assignment_type: &'static str,
}

impl From<Team> for model::TeamId {
    fn from(t: Team) -> Self {
        TeamId(t.id)
    }
}

/// The token endpoint's answer.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
}
