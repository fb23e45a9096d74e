namespace Linq2DbTestKit.Tests.Unit;

/// <summary>Whether a statement could change data: what the bypass report and the divergence check call a write.</summary>
public sealed class WritesTests
{
    [TestCase("SELECT * FROM t")]
    [TestCase("select count(*) from t where x = 'INSERT'")]
    [TestCase("SELECT * FROM t FOR UPDATE")]
    [TestCase("SELECT * FROM t FOR NO KEY UPDATE")]
    [TestCase("WITH a AS (SELECT 1) SELECT * FROM a")]
    [TestCase("SHOW server_version")]
    [TestCase("VALUES (1)")]
    public void Queries_are_reads(string sql) =>
        Assert.That(SqlScanner.Writes(sql), Is.False, sql);

    [TestCase("INSERT INTO t VALUES (1)")]
    [TestCase("update t set x = 1")]
    [TestCase("DELETE FROM t")]
    [TestCase("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE")]
    [TestCase("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone")]
    [TestCase("SELECT * INTO copy FROM t")]
    [TestCase("TRUNCATE t")]
    [TestCase("CREATE TABLE t (id int)")]
    [TestCase("SELECT 1; INSERT INTO t VALUES (1)")]
    [TestCase("COPY t FROM STDIN")]
    public void Anything_else_can_write(string sql) =>
        Assert.That(SqlScanner.Writes(sql), Is.True, sql);
}
