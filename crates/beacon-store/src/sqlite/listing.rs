//! SQLite execution listings: the filtered, paged list the API serves and the keyset
//! pages of one job the report reads.

use sqlx::{AssertSqlSafe, Row};

use super::SqliteStore;
use crate::common::{self, execution_cols};
use crate::{ExecutionFilter, ExecutionRecord, Page, Result};

impl SqliteStore {
    pub(super) async fn list_executions_impl(
        &self,
        filter: &ExecutionFilter,
    ) -> Result<Page<ExecutionRecord>> {
        let q = common::execution_query(filter);
        let n = q.binds.len();
        let count_sql = format!("SELECT COUNT(*) AS n FROM executions{}", q.where_sql);
        let mut count = sqlx::query(AssertSqlSafe(count_sql));
        for b in &q.binds {
            count = count.bind(b);
        }
        let total: i64 = count.fetch_one(&self.pool).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT {} FROM executions{}{} LIMIT ${} OFFSET ${}",
            execution_cols!(),
            q.where_sql,
            q.order_sql,
            n + 1,
            n + 2
        );
        let mut page = sqlx::query(AssertSqlSafe(page_sql));
        for b in &q.binds {
            page = page.bind(b);
        }
        let rows = page
            .bind(common::limit(filter.limit))
            .bind(i64::from(filter.offset))
            .fetch_all(&self.pool)
            .await?;
        Ok(Page {
            items: rows
                .iter()
                .map(common::execution_from_row)
                .collect::<Result<_>>()?,
            total: common::to_u64(total)?,
        })
    }

    pub(super) async fn job_executions_after_impl(
        &self,
        job_id: &str,
        after_seq: Option<u32>,
        limit: u32,
    ) -> Result<Vec<ExecutionRecord>> {
        // -1 is below every seq, so the first page needs no second statement.
        let rows = sqlx::query(concat!(
            "SELECT ",
            execution_cols!(),
            " FROM executions WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(job_id)
        .bind(after_seq.map_or(-1, i64::from))
        .bind(common::limit(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(common::execution_from_row).collect()
    }
}
