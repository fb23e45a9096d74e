using System.Data;
using Linq2DbTestKit.Conformance;
using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Mapping;
using Microsoft.Data.SqlClient;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.SqlServer;

/// <summary>
/// The reset after a real-commit session on SQL Server, by comparison with the prepared copies: exact, with none of the
/// application's triggers firing, whatever wrote the rows (a bulk load fires no trigger), and without triggers of the
/// kit's own in the way of <c>OUTPUT</c>. Each test has a database of its own, checked from outside.
/// </summary>
[Parallelizable(ParallelScope.All)]
[CancelAfter(120_000)]
public sealed class RealCommitResets
{
    const string Accounts = """
        CREATE TABLE dbo.audit_log (id int IDENTITY PRIMARY KEY, what nvarchar(100) NOT NULL);
        CREATE TABLE dbo.accounts (id int PRIMARY KEY, name nvarchar(100) NOT NULL, notes nvarchar(max) NULL);
        CREATE TABLE dbo.empty_at_first (id int IDENTITY PRIMARY KEY, name nvarchar(100) NOT NULL);
        INSERT INTO dbo.accounts (id, name, notes) VALUES (1, N'ada', REPLICATE(N'n', 400)), (2, N'grace', NULL);
        EXEC (N'CREATE TRIGGER dbo.accounts_audit ON dbo.accounts AFTER INSERT, UPDATE, DELETE AS SET NOCOUNT ON; INSERT INTO dbo.audit_log (what) VALUES (N''write'');');
        EXEC (N'CREATE TRIGGER dbo.accounts_keep ON dbo.accounts INSTEAD OF DELETE AS SET NOCOUNT ON; THROW 50000, ''accounts are never deleted'', 1;');
        """;

    [Table("accounts")]
    sealed class Account
    {
        [PrimaryKey, Column("id")] public int Id { get; set; }
        [Column("name")] public string Name { get; set; } = "";
    }

    static async Task AssertAsPreparedAsync(OwnDatabase own, IReadOnlyDictionary<string, string> prepared)
    {
        var now = await own.StateAsync();
        var changed = prepared.Keys.Union(now.Keys).Where(key => prepared.GetValueOrDefault(key) != now.GetValueOrDefault(key))
            .Select(key => $"{key}: prepared [{prepared.GetValueOrDefault(key)}], now [{now.GetValueOrDefault(key)}]");
        Assert.That(changed, Is.Empty, "every table, identity and sequence as the run prepared it");
        Assert.That(await own.Database.FindLeaksAsync(), Is.Null, "the leak check finds the database as prepared");
    }

    [Test]
    public async Task The_applications_triggers_do_not_fire_during_the_reset_and_an_instead_of_delete_does_not_stop_it()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        var prepared = await own.StateAsync();

        var restored = await own.InSessionAsync(
            "UPDATE dbo.accounts SET name = N'ada lovelace', notes = REPLICATE(N'm', 400) WHERE id = 1",
            "INSERT INTO dbo.accounts (id, name) VALUES (3, N'linus')");

        Assert.That(restored, Is.EquivalentTo(new[] { "[dbo].[accounts]", "[dbo].[audit_log]" }), "the accounts, and the audit rows the session's writes made");
        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task Output_without_into_works_in_a_session()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts.Replace("EXEC (N'CREATE TRIGGER", "-- EXEC (N'CREATE TRIGGER", StringComparison.Ordinal));
        var prepared = await own.StateAsync();

        await using (var session = await own.Database.BeginRealCommitsAsync())
        {
            await using var db = new DataConnection(session.Options);
            var updated = db.GetTable<Account>().Where(a => a.Id == 1).UpdateWithOutput(a => new Account { Id = a.Id, Name = "output" }).ToList();
            Assert.That(updated.Single().Inserted.Name, Is.EqualTo("output"));
        }

        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task A_bulk_load_into_a_table_empty_when_prepared_is_restored()
    {
        BabelfishDifference.BulkCopyColumnList.SkipHere();
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        var prepared = await own.StateAsync();

        await using (await own.Database.BeginRealCommitsAsync())
        {
            await using var connection = new SqlConnection(own.Database.ConnectionString);
            await connection.OpenAsync();
            using var rows = new DataTable();
            rows.Columns.Add("id", typeof(int));
            rows.Columns.Add("name", typeof(string));
            rows.Rows.Add(1, "loaded");
            using var copy = new SqlBulkCopy(connection) { DestinationTableName = "dbo.empty_at_first" };   // fires no trigger
            await copy.WriteToServerAsync(rows);
        }

        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task Rows_committed_outside_every_session_are_reported_and_kept_by_the_next_sessions_reset()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        await own.ExecuteAsync("INSERT INTO dbo.empty_at_first (name) VALUES (N'set-up leak')");

        await own.InSessionAsync("UPDATE dbo.accounts SET name = N'changed' WHERE id = 1");

        Assert.That(await own.ScalarAsync("SELECT name FROM dbo.accounts WHERE id = 1"), Is.EqualTo("ada"));
        Assert.That(await own.Database.FindLeaksAsync(), Does.Contain("[dbo].[empty_at_first]: 0 rows before, 1 row now (found when a real-commit test began"));
    }

    [Test]
    public async Task A_sequence_the_session_did_not_use_is_not_restarted()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts + "\nCREATE SEQUENCE dbo.numbers START WITH 1 INCREMENT BY 1;");
        await own.ExecuteAsync("SELECT NEXT VALUE FOR dbo.numbers");     // a scope's rolled-back test would move it too
        var before = await own.StateAsync();

        await own.InSessionAsync("UPDATE dbo.accounts SET name = N'changed' WHERE id = 1");

        Assert.That(await own.StateAsync(), Is.EqualTo(before), "the reset left the sequence where the session found it");
    }
}
