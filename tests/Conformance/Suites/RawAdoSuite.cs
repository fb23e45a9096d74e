using System.Data;
using System.Data.Common;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>Raw ADO.NET (and Dapper-style) code on a scope's connection behaves as linq2db code does.</summary>
public abstract class RawAdoSuite(Mode mode) : ConformanceTest
{
    async Task InsertAsync(DbConnection connection, string name, DbTransaction? transaction = null)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO items (name, quantity) VALUES (@name, 1)";
        command.Transaction = transaction;
        var parameter = command.CreateParameter();
        parameter.ParameterName = "name";
        parameter.Value = name;
        command.Parameters.Add(parameter);
        if (mode == Mode.Async)
            await command.ExecuteNonQueryAsync();
        else
            command.ExecuteNonQuery();
    }

    async Task<DbTransaction> BeginAsync(DbConnection connection) =>
        mode == Mode.Async ? await connection.BeginTransactionAsync() : connection.BeginTransaction();

    async Task CommitAsync(DbTransaction transaction)
    {
        if (mode == Mode.Async)
            await transaction.CommitAsync();
        else
            transaction.Commit();
    }

    async Task RollbackAsync(DbTransaction transaction)
    {
        if (mode == Mode.Async)
            await transaction.RollbackAsync();
        else
            transaction.Rollback();
    }

    [Test]
    public async Task Raw_commands_run_in_the_tests_transaction_and_linq2db_sees_them()
    {
        await using (var connection = Scope.OpenConnection())
            await InsertAsync(connection, Name("raw"));

        using var db = NewShop();
        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "raw" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Raw_transactions_nest_as_savepoints()
    {
        await using var outer = Scope.OpenConnection();
        await using var inner = Scope.OpenConnection();

        var outerTransaction = await BeginAsync(outer);
        await InsertAsync(outer, Name("outer"), outerTransaction);
        var innerTransaction = await BeginAsync(inner);
        await InsertAsync(inner, Name("inner"), innerTransaction);
        await RollbackAsync(innerTransaction);
        await CommitAsync(outerTransaction);

        using var db = NewShop();
        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "outer" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Raw_and_linq2db_transactions_nest_inside_each_other()
    {
        using var db = NewShop();
        var linqTransaction = mode == Mode.Async ? await db.BeginTransactionAsync() : db.BeginTransaction();
        await using (var connection = Scope.OpenConnection())
        {
            var rawTransaction = await BeginAsync(connection);
            await InsertAsync(connection, Name("raw"), rawTransaction);
            await CommitAsync(rawTransaction);
        }

        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "raw" }));
        linqTransaction.Rollback();

        // The raw transaction's savepoint was inside linq2db's; in production the raw connection's commit was durable.
        Assert.That(await NamesAsync(db, mode), Is.Empty);
        Assert.That(Scope.Divergences, Has.Count.EqualTo(1));
        Assert.That(Scope.Divergences[0], Does.Contain("connection #2 committed its transaction").And.Contain("of DataConnection #1, begun before it"));
        await EndScopeAndAssertDivergedAsync("committed its transaction");
    }

    [Test]
    public async Task A_raw_transaction_begun_after_linq2dbs_ended_is_kept_by_a_later_rollback()
    {
        using var db = NewShop();
        var first = mode == Mode.Async ? await db.BeginTransactionAsync() : db.BeginTransaction();
        first.Rollback();
        await using (var connection = Scope.OpenConnection())
        {
            var rawTransaction = await BeginAsync(connection);
            await InsertAsync(connection, Name("raw"), rawTransaction);
            await CommitAsync(rawTransaction);
        }

        var second = mode == Mode.Async ? await db.BeginTransactionAsync() : db.BeginTransaction();
        second.Rollback();
        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "raw" }));
        Assert.That(Scope.Divergences, Is.Empty);
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_connection_holds_one_transaction_at_a_time_as_the_driver_does()
    {
        await using var connection = Scope.OpenConnection();
        await using var transaction = await BeginAsync(connection);

        Assert.That(() => connection.BeginTransaction(), Throws.InvalidOperationException.With.Message.Contains("already has a transaction"));
    }

    [Test]
    public async Task Closing_a_connection_rolls_back_its_open_transaction_and_leaves_the_scope_open()
    {
        var connection = Scope.OpenConnection();
        var transaction = await BeginAsync(connection);
        await InsertAsync(connection, Name("abandoned"), transaction);
        if (mode == Mode.Async)
            await connection.DisposeAsync();
        else
            connection.Dispose();

        Assert.That(transaction.Connection, Is.Null, "the transaction has ended");
        await using var again = Scope.OpenConnection();
        await InsertAsync(again, Name("after"));
        using var db = NewShop();
        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "after" }));
    }

    [Test]
    public async Task Statements_that_would_end_the_tests_transaction_are_refused_before_they_reach_the_server()
    {
        await using var connection = Scope.OpenConnection();
        await InsertAsync(connection, Name("kept"));
        await using var command = connection.CreateCommand();

        foreach (var sql in new[] { "COMMIT", "  rollback", "/* sneaky */ COMMIT", $"INSERT INTO items (name) VALUES ('{Name("x")}'); COMMIT" })
        {
            command.CommandText = sql;
            Assert.That(() => command.ExecuteNonQuery(), Throws.InvalidOperationException.With.Message.Contains("would end the test's transaction"), sql);
        }

        command.CommandText = "SELECT 'commit; rollback' AS text_about_commit";
        Assert.That(command.ExecuteScalar(), Is.EqualTo("commit; rollback"), "words inside string literals are data");
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_transaction_ends_once()
    {
        await using var connection = Scope.OpenConnection();
        var transaction = await BeginAsync(connection);
        await CommitAsync(transaction);

        Assert.That(() => transaction.Commit(), Throws.InvalidOperationException.With.Message.Contains("has completed"));
        Assert.That(() => transaction.Rollback(), Throws.InvalidOperationException.With.Message.Contains("has completed"));
        Assert.That(transaction.Connection, Is.Null);
        Assert.That(transaction.IsolationLevel, Is.EqualTo(IsolationLevel.Unspecified));
    }
}
