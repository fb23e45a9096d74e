using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.SqlServer;
using LinqToDB;
using LinqToDB.Data;
using Microsoft.Data.SqlClient;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.SqlServer;

/// <summary>
/// What only SQL Server does: savepoints without release, names of at most 32 characters, statement-level rollback,
/// doomed and server-ended transactions, SqlBulkCopy's need for the transaction, identity values that outlive a rollback.
/// </summary>
public sealed class SqlServerSpecifics : ConformanceTest
{
    int TranCount() => Db.Execute<int>("SELECT @@TRANCOUNT");

    [Test]
    public void Application_transactions_become_save_transaction_and_rollback_transaction_in_one_server_transaction()
    {
        using var outer = NewShop();
        using var inner = NewShop();
        using (var transaction = outer.BeginTransaction())
        {
            using (var nested = inner.BeginTransaction())
            {
                inner.Insert(new Item { Name = Name("rolled-back") });
                Assert.That(TranCount(), Is.EqualTo(1), "savepoints open no transaction of their own");
                nested.Rollback();
            }

            transaction.Commit();
        }

        Assert.That(TranCount(), Is.EqualTo(1), "the test's transaction is still the only one");
        Assert.That(Scope.Trace, Does.Match(@"SAVE TRANSACTION (testkit_\d+)[\s\S]*SAVE TRANSACTION (testkit_\d+)[\s\S]*ROLLBACK TRANSACTION \2[\s\S]*commit → nothing to send"));
        Assert.That(Scope.Trace, Does.Not.Contain("RELEASE"));
    }

    [Test]
    public void Release_is_a_no_op_the_savepoint_stays_usable()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.Transaction!.Save("before");
        db.Insert(new Item { Name = Name("a") });

        db.Transaction.Release("before");
        db.Transaction.Rollback("before");

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, "SQL Server has no release: the savepoint was still there to roll back to");
    }

    [Test]
    public void Savepoint_names_stay_within_32_characters_however_many_transactions_a_test_runs()
    {
        Assert.That(((DatabaseProvider)SqlServerDatabaseProvider.Instance).SavepointName(long.MaxValue), Has.Length.LessThanOrEqualTo(SqlServerDatabaseProvider.MaxSavepointNameLength));

        using var db = NewShop();
        for (var i = 0; i < 500; i++)
        {
            using var transaction = db.BeginTransaction();
            if (i % 100 == 0)
                db.Insert(new Item { Name = Name($"{i:D3}") });
            transaction.Commit();
        }

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(5));
    }

    [Test]
    public void An_application_savepoint_name_over_32_characters_fails_as_it_would_outside_a_test()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();

        Assert.That(() => db.Transaction!.Save(new string('s', 33)), Throws.InstanceOf<SqlException>());
        db.Insert(new Item { Name = Name("after") });
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1));
    }

    [Test]
    public void A_failed_statement_rolls_back_alone_and_the_test_goes_on()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });

        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<SqlException>().With.Property("Number").EqualTo(2627).Or.Property("Number").EqualTo(2601));
        db.Insert(new Item { Name = Name("b") });

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(2));
    }

    [Test]
    public async Task A_transaction_the_server_rolls_back_whole_is_reported_and_nothing_runs_after_it()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        db.Execute("SET XACT_ABORT ON");

        // With XACT_ABORT ON, an error rolls back the whole transaction: the test's.
        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<SqlException>());

        var error = Assert.Throws<TestScopeException>(() => db.Insert(new Item { Name = Name("b") }));
        Assert.That(error!.Message, Does.Contain("rolled back the test's whole transaction").And.Contain("INSERT").And.Contain("nothing more can run"));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_doomed_transaction_is_reported_and_the_application_rollback_does_not_hide_it()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });

        using (var transaction = db.BeginTransaction())
        {
            // Inside TRY…CATCH with XACT_ABORT ON, the error dooms the transaction instead of ending it: XACT_STATE() = -1.
            var state = db.Execute<int>($"SET XACT_ABORT ON; BEGIN TRY INSERT INTO items (name) VALUES (N'{Name("a")}') END TRY BEGIN CATCH END CATCH; SELECT XACT_STATE()");
            Assert.That(state, Is.EqualTo(-1));

            // The next write fails on the doomed transaction; the application's rollback of its savepoint cannot be done, and is not an error.
            Assert.That(() => db.Insert(new Item { Name = Name("b") }), Throws.InstanceOf<SqlException>());
            transaction.Rollback();
        }

        var error = Assert.Throws<TestScopeException>(() => db.Items.Count());
        Assert.That(error!.Message, Does.Contain("doomed the test's transaction (XACT_STATE() = -1)").And.Contain("nothing more can run"));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public void SqlBulkCopy_runs_natively_inside_an_application_transaction_across_batches()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.BulkCopy(new BulkCopyOptions { BulkCopyType = BulkCopyType.ProviderSpecific, MaxBatchSize = 100 },
            Enumerable.Range(1, 1000).Select(i => new Item { Name = Name($"{i:D4}") }));
        transaction.Commit();

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1000));
        Assert.That(Scope.Trace, Does.Match("INSERT (ASYNC )?BULK items").And.Not.Contain("INSERT INTO"));
    }

    [Test]
    public void Identity_values_are_not_reused_after_a_rollback()
    {
        using var db = NewShop();
        long first;
        using (var transaction = db.BeginTransaction())
        {
            first = db.InsertWithInt64Identity(new Item { Name = Name("first") });
            transaction.Rollback();
        }

        var second = db.InsertWithInt64Identity(new Item { Name = Name("second") });

        Assert.That(second, Is.GreaterThan(first), "SQL Server does not give identity values back on rollback: never assert on generated ids");
    }

    [Test]
    public void The_runs_database_reads_committed_snapshots_so_parallel_tests_do_not_wait_for_each_other()
    {
        Assert.That(Db.Execute<bool>("SELECT is_read_committed_snapshot_on FROM sys.databases WHERE name = DB_NAME()"), Is.True);
    }

    [Test]
    public void Raw_transaction_statements_are_refused_where_they_would_end_the_tests_transaction()
    {
        using var db = NewShop();
        foreach (var sql in new[] { "COMMIT", "ROLLBACK", "BEGIN TRAN", "IF 1 = 1 BEGIN TRANSACTION" })
            Assert.That(() => db.Execute(sql), Throws.InvalidOperationException.With.Message.Contains("would end the test's transaction"), sql);

        Assert.That(db.Execute<int>("BEGIN TRY SELECT 1 END TRY BEGIN CATCH SELECT 0 END CATCH"), Is.EqualTo(1), "BEGIN TRY is no transaction");
    }
}
