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
    [TestCase("EXEC('BEGIN TRAN')")]
    [TestCase("EXEC('SAVE TRAN x')")]
    [TestCase("EXEC('COM' + 'MIT')")]
    [TestCase("EXEC ( N'SELECT 1; ' + N'COMMIT' )")]
    [TestCase("EXEC [sp_executesql] N'COMMIT'")]
    [TestCase("EXEC [sys].[sp_executesql] N'ROLLBACK'")]
    [TestCase("EXEC sp_executesql N'EXEC(''COMMIT'')'")]
    public void Dynamic_SQL_is_read_as_SQL(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.True, sql);

    [TestCase("EXEC sp_executesql N'INSERT INTO t (note) VALUES (@note)', N'@note nvarchar(20)', @note = N'COMMIT'")]
    [TestCase("EXEC sp_executesql N'UPDATE t SET a = @a', N'@a nvarchar(20)', N'ROLLBACK'")]
    [TestCase("EXEC('INSERT INTO t VALUES (1)'); SELECT 'COMMIT'")]
    public void Data_in_a_batch_with_dynamic_SQL_is_not_a_statement(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.False, sql);

    [TestCase("DECLARE @s nvarchar(100) = N'COMMIT'; EXEC(@s)")]
    [TestCase("DECLARE @s nvarchar(100) = N'COMMIT'; EXEC sp_executesql @s")]
    public void Text_in_a_variable_is_left_to_the_server_where_the_scope_counts_a_commit_down(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.False, sql);

    [TestCase("CREATE PROCEDURE p AS BEGIN COMMIT END")]
    [TestCase("create or alter proc p as begin tran; update t set a = 1; commit")]
    [TestCase("ALTER TRIGGER tr ON t AFTER INSERT AS ROLLBACK")]
    [TestCase("CREATE FUNCTION f() RETURNS int AS BEGIN RETURN 1 END")]
    public void Defining_a_procedure_function_or_trigger_runs_none_of_its_body(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.False, sql);

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
