namespace Linq2DbTestKit.Tests.Unit;

/// <summary>T-SQL's lexical rules, as the kit follows them to tell transaction statements apart.</summary>
public sealed class TSqlLexingTests
{
    static StatementControl Classify(string sql) => TransactionStatements.Classify(sql, SqlDialect.TSql);

    [TestCase("COMMIT")]
    [TestCase("COMMIT TRANSACTION")]
    [TestCase("commit work")]
    [TestCase("ROLLBACK")]
    [TestCase("ROLLBACK TRANSACTION")]
    [TestCase("ROLLBACK TRAN; SELECT 1")]
    [TestCase("ROLLBACK TRAN SELECT 1")]
    [TestCase("BEGIN TRAN")]
    [TestCase("BEGIN TRANSACTION t1")]
    [TestCase("BEGIN DISTRIBUTED TRANSACTION")]
    [TestCase("IF @@TRANCOUNT > 0 COMMIT")]
    [TestCase("INSERT INTO t VALUES (1) COMMIT")]
    [TestCase("SELECT 1 -- note\rCOMMIT")]
    [TestCase("SELECT a$b$ FROM t; COMMIT")]
    public void A_transaction_statement_is_found_wherever_it_stands(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.True, sql);

    [TestCase("INSERT INTO items (commit_flag) VALUES (@Commit)")]
    [TestCase("UPDATE t SET a = @Rollback WHERE id = @id")]
    [TestCase("SELECT * FROM #commit")]
    [TestCase("SELECT * FROM ##rollback")]
    [TestCase("SELECT [Commit], [Roll]]back] FROM t")]
    [TestCase("SELECT \"commit\" FROM t")]
    [TestCase("SELECT N'COMMIT', 'rollback'")]
    [TestCase("SELECT 1 /* nested /* COMMIT */ still a comment COMMIT */")]
    [TestCase("EXEC log_message 'commit done'")]
    [TestCase("SELECT transaction_id FROM sys.dm_tran_active_transactions")]
    public void Parameters_temporary_tables_names_literals_and_comments_are_not_statements(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.False, sql);

    [TestCase("EXEC('COMMIT')")]
    [TestCase("EXECUTE ('ROLLBACK')")]
    [TestCase("EXEC sp_executesql N'COMMIT'")]
    [TestCase("EXEC sys.sp_executesql @stmt = N'IF @@TRANCOUNT > 0 COMMIT'")]
    [TestCase("DECLARE @s nvarchar(100) = N'COMMIT'; EXEC(@s)")]
    [TestCase("EXEC('BEGIN TRAN')")]
    [TestCase("EXEC('SAVE TRAN x')")]
    public void Dynamic_SQL_is_read_as_SQL(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.True, sql);

    [TestCase("SAVE TRAN s1", "Save", "s1")]
    [TestCase("SAVE TRANSACTION [s 1]", "Save", "s 1")]
    [TestCase("ROLLBACK TRAN s1", "Rollback", "s1")]
    [TestCase("ROLLBACK TRANSACTION @name", "Rollback", "@name")]
    public void Savepoint_statements_are_told_apart(string sql, string action, string name)
    {
        var control = Classify(sql);

        Assert.That(control.EndsTransaction, Is.False);
        Assert.That(control.Savepoint, Is.EqualTo(new SavepointCommand(Enum.Parse<SavepointAction>(action), name)));
        Assert.That(control.Statements, Is.EqualTo(1));
    }

    [Test]
    public void A_savepoint_among_other_statements_is_counted_with_them() =>
        Assert.That(Classify("INSERT INTO t VALUES (1) SAVE TRAN s1").Statements, Is.GreaterThan(1));
}
