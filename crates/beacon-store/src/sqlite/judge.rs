//! The SQLite side of judge labels (crate::judge).

use super::SqliteStore;
use super::t;
use crate::Result;
use crate::common::{limit, to_u64};
use crate::judge::{
    COUNT_LABELS_SQL, INSERT_LABEL_SQL, JudgeCandidate, JudgeLabel, candidate_from_row,
    judge_candidates_sql, judge_labels_sql, label_from_row, raw_text,
};

impl SqliteStore {
    pub(super) async fn judge_candidates_impl(
        &self,
        rubric: &str,
        after: &str,
        page: u32,
    ) -> Result<Vec<JudgeCandidate>> {
        let rows = sqlx::query(judge_candidates_sql!())
            .bind(rubric)
            .bind(after)
            .bind(limit(page))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(candidate_from_row).collect()
    }

    pub(super) async fn insert_judge_label_impl(&self, l: &JudgeLabel) -> Result<bool> {
        let _turn = self.write_turn().await;
        let n = sqlx::query(INSERT_LABEL_SQL)
            .bind(&l.execution_id)
            .bind(&l.rubric)
            .bind(&l.label)
            .bind(&l.model)
            .bind(&l.provider_id)
            .bind(raw_text(&l.raw))
            .bind(t(l.created_at))
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    pub(super) async fn judge_labels_impl(
        &self,
        job_id: &str,
        rubric: &str,
    ) -> Result<Vec<JudgeLabel>> {
        let rows = sqlx::query(judge_labels_sql!())
            .bind(job_id)
            .bind(rubric)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(label_from_row).collect()
    }

    pub(super) async fn count_judge_labels_impl(&self, job_id: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(COUNT_LABELS_SQL)
            .bind(job_id)
            .fetch_one(&self.pool)
            .await?;
        to_u64(n)
    }
}
