using System.Data;
using System.Transactions;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using LinqToDB.Data;
using NUnit.Framework;
using IsolationLevel = System.Data.IsolationLevel;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>What happens when code uses a scope in ways the kit cannot honour: each a clear error, or a documented behaviour.</summary>
public abstract class MisuseSuite : ConformanceTest
{
    [Test]
    public void A_transaction_asked_for_another_isolation_level_runs_at_the_tests_and_the_trace_says_so()
    {
        using var db = NewShop();
        using (var transaction = db.BeginTransaction(IsolationLevel.Serializable))
        {
            db.Insert(new Item { Name = Name("a") });
            transaction.Commit();
        }

        Assert.That(Scope.Trace, Does.Contain("asked for Serializable; a savepoint runs at the test transaction's"));
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1));
    }

    [Test]
    public void Closing_or_disposing_a_DataConnections_connection_behind_its_back_leaves_the_scope_working()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("before") });

        db.OpenDbConnection().Close();
        db.Insert(new Item { Name = Name("after-close") });
        db.OpenDbConnection().Dispose();
        db.Insert(new Item { Name = Name("after-dispose") });

        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(3), "linq2db reopens the handle; the scope's connection never closed");
    }

    [Test]
    public void A_TransactionScope_is_refused_with_what_to_use_instead()
    {
        using var db = NewShop();
        using (new TransactionScope(TransactionScopeAsyncFlowOption.Enabled))
        {
            Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("TransactionScope").And.Message.Contains("BeginTransaction"));
            Assert.That(() => db.BeginTransaction(), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("TransactionScope"));
        }

        db.Insert(new Item { Name = Name("after") });
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1));
    }

    [Test]
    public void Changing_the_database_of_the_scopes_connection_is_refused()
    {
        using var connection = Scope.OpenConnection();

        Assert.That(() => connection.ChangeDatabase("other"), Throws.InstanceOf<NotSupportedException>().With.Message.Contains("other"));
        Assert.That(() => connection.ConnectionString = "Server=elsewhere", Throws.InstanceOf<NotSupportedException>());
    }

    [Test]
    public async Task Using_a_scope_after_it_ended_says_it_ended()
    {
        var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        await Scope.DisposeAsync();

        Assert.That(() => db.Items.Count(), Throws.InvalidOperationException.With.Message.Contains("has ended"));
        Assert.That(() => new ShopDb(Scope.Options).Items.Count(), Throws.InvalidOperationException.With.Message.Contains("has ended"));
        Assert.That(() => Scope.OpenConnection(), Throws.InvalidOperationException.With.Message.Contains("has ended"));
        db.Dispose();
    }

    [Test]
    public void Interleaved_transactions_cannot_commit_out_of_order()
    {
        using var first = NewShop();
        using var second = NewShop();
        var outer = first.BeginTransaction();
        var inner = second.BeginTransaction();

        Assert.That(() => outer.Commit(), Throws.InvalidOperationException.With.Message.Contains("cannot commit while").And.Message.Contains("must end first"));

        inner.Commit();
        outer.Commit();
    }

    [Test]
    public async Task An_outer_rollback_that_takes_another_connections_transaction_says_so_at_its_next_use_and_at_the_end()
    {
        using var first = NewShop();
        using var second = NewShop();
        var outer = first.BeginTransaction();
        var inner = second.BeginTransaction();
        second.Insert(new Item { Name = Name("inner") });

        outer.Rollback();

        Assert.That(() => inner.Commit(), Throws.InstanceOf<TestScopeException>()
            .With.Message.Contains("rolled back because").And.Message.Contains("in production they are independent"),
            "production would still have the inner transaction open, and commit it");
        Assert.That(() => inner.Rollback(), Throws.Nothing, "said once; rolling back what is rolled back already is no error");
        Assert.That(first.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero);
        Assert.That(() => second.BeginTransaction().Commit(), Throws.Nothing, "the connection is free for its next transaction");
        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("behaved differently from production"),
            "the end of the test reports it too, in case the application caught it");
    }

    [Test]
    public async Task A_rollback_that_undoes_another_connections_write_outside_a_transaction_fails_the_test()
    {
        using var first = NewShop();
        using var second = NewShop();
        var outer = first.BeginTransaction();
        second.Insert(new Item { Name = Name("autocommitted-in-production") });

        outer.Rollback();

        Assert.That(second.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, "in the scope the write was undone with the other connection's transaction");
        Assert.That(Scope.Divergences, Has.Count.EqualTo(1).And.One.Contains("would have committed it at once").And.One.Contains("real-commit test"));
        Assert.That(async () => await Scope.DisposeAsync(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("wrote outside any transaction of its own"));
    }

    [Test]
    public async Task A_rollback_that_takes_another_connections_commit_and_its_writes_after_it_names_each()
    {
        using var first = NewShop();
        using var second = NewShop();
        var outer = first.BeginTransaction();
        using (var inner = second.BeginTransaction())
        {
            second.Insert(new Item { Name = Name("committed") });
            inner.Commit();
        }

        second.Insert(new Item { Name = Name("autocommitted-after-the-commit") });
        outer.Rollback();

        Assert.That(second.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, "in the scope both went with the other connection's transaction");
        Assert.That(Scope.Divergences, Has.Count.EqualTo(2)
            .And.One.Contains("DataConnection #2 committed its transaction")
            .And.One.Contains("DataConnection #2 wrote outside any transaction of its own"));
        await EndScopeAndAssertDivergedAsync("committed its transaction");
    }

    [Test]
    public async Task A_rollback_that_takes_what_raw_ADO_committed_on_another_connection_fails_the_test()
    {
        await using var first = Scope.OpenConnection();
        await using var second = Scope.OpenConnection();
        await using var outer = await first.BeginTransactionAsync();
        await using (var inner = await second.BeginTransactionAsync())
        {
            await using var insert = second.CreateCommand();
            insert.Transaction = inner;
            insert.CommandText = $"INSERT INTO items (name, quantity) VALUES ('{Name("raw")}', 1)";
            await insert.ExecuteNonQueryAsync();
            await inner.CommitAsync();
        }

        await outer.RollbackAsync();

        Assert.That(Scope.Divergences, Has.Count.EqualTo(1).And.One.Contains("connection #2 committed its transaction").And.One.Contains("INSERT INTO items"));
        await EndScopeAndAssertDivergedAsync("committed its transaction");
    }

    [Test]
    public void A_write_outside_a_transaction_that_no_rollback_undoes_is_no_divergence()
    {
        using var first = NewShop();
        using var second = NewShop();
        var outer = first.BeginTransaction();
        second.Insert(new Item { Name = Name("kept") });
        outer.Commit();

        Assert.That(Scope.Divergences, Is.Empty);
        Assert.That(second.Items.Count(i => i.Name.StartsWith(Tag)), Is.EqualTo(1));
    }
}
