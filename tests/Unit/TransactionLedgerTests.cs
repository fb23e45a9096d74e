using System.Data;

namespace Linq2DbTestKit.Tests.Unit;

/// <summary>The rules of a scope's transactions, without a server: what commits, what a rollback takes with it, what a failure aborts.</summary>
[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]
public sealed class TransactionLedgerTests
{
    readonly TransactionLedger _ledger = new();

    // The ledger never touches a connection's scope; the handles only say who owns what.
    static TestScopeConnection Connection(string name) => new(null!, name, tracedByLinqToDB: false);

    SavepointTransaction Begin(TestScopeConnection owner)
    {
        var transaction = new SavepointTransaction(owner, $"testkit_{_ledger.NextSavepointNumber()}", IsolationLevel.Unspecified, _ledger.Next());
        _ledger.Began(transaction);
        owner.Transaction = transaction;
        return transaction;
    }

    [Test]
    public void Only_the_innermost_transaction_commits()
    {
        var outer = Begin(Connection("a"));
        var inner = Begin(Connection("b"));

        Assert.That(_ledger.PlanCommit(outer), Is.EqualTo(CommitPlan.RefuseNotInnermost));
        Assert.That(_ledger.PlanCommit(inner), Is.EqualTo(CommitPlan.Release));
        _ledger.Committed(inner);
        Assert.That(_ledger.PlanCommit(outer), Is.EqualTo(CommitPlan.Release));
        Assert.That(_ledger.PlanCommit(inner), Is.EqualTo(CommitPlan.Refuse), "a transaction commits once");
    }

    [Test]
    public void A_rollback_discards_the_transactions_begun_after_it_and_their_connections_say_so_next()
    {
        var a = Connection("a");
        var b = Connection("b");
        var outer = Begin(a);
        var inner = Begin(b);

        var effects = _ledger.PlanRollback(outer);
        _ledger.RolledBack(outer, effects);

        Assert.That(effects.Discarded, Is.EqualTo(new[] { inner }));
        Assert.That(inner.State, Is.EqualTo(SavepointState.Discarded));
        Assert.That(b.HasPendingDivergence, Is.True, "production would still have b's transaction open");
        Assert.That(a.HasPendingDivergence, Is.False);
        Assert.That(_ledger.Open, Is.Empty);
    }

    [Test]
    public void A_rollback_that_undoes_what_another_connection_committed_in_a_transaction_begun_later_is_a_divergence()
    {
        var a = Connection("a");
        var b = Connection("b");
        var outer = Begin(a);
        var inner = Begin(b);
        _ledger.Wrote(b, "INSERT committed");
        _ledger.Committed(inner);

        var effects = _ledger.PlanRollback(outer);

        Assert.That(effects.LostWrites.Select(w => (w.Connection, w.Sql, w.CommittedIn)), Is.EqualTo(new[] { (b, "INSERT committed", (string?)inner.Name) }));
    }

    [Test]
    public void Commits_nested_deeper_than_two_are_each_a_divergence_of_the_rollback_that_undoes_them()
    {
        var (a, b, c) = (Connection("a"), Connection("b"), Connection("c"));
        var first = Begin(a);
        var second = Begin(b);
        var third = Begin(c);
        _ledger.Wrote(c, "INSERT by c");
        _ledger.Committed(third);
        _ledger.Wrote(b, "UPDATE by b");
        _ledger.Committed(second);
        _ledger.Wrote(b, "DELETE by b, after its commit, outside any transaction");

        var effects = _ledger.PlanRollback(first);

        Assert.That(effects.LostWrites.Select(w => w.Sql), Is.EqualTo(new[] { "INSERT by c", "UPDATE by b", "DELETE by b, after its commit, outside any transaction" }));
    }

    [Test]
    public void A_transaction_that_commits_no_write_or_nests_in_no_other_connections_is_no_divergence()
    {
        var (a, b) = (Connection("a"), Connection("b"));
        var outer = Begin(a);
        var readOnly = Begin(b);
        _ledger.Committed(readOnly);
        Assert.That(_ledger.PlanRollback(outer).LostWrites, Is.Empty, "it committed nothing");
        _ledger.RolledBack(outer, _ledger.PlanRollback(outer));

        var alone = Begin(b);
        _ledger.Wrote(b, "INSERT alone");
        _ledger.Committed(alone);
        var later = Begin(a);
        Assert.That(_ledger.PlanRollback(later).LostWrites, Is.Empty, "a commit before the rolled-back transaction began is not undone by it");
    }

    [Test]
    public void What_a_transaction_rolled_back_to_its_own_savepoint_is_not_what_it_commits()
    {
        var (a, b) = (Connection("a"), Connection("b"));
        var outer = Begin(a);
        var inner = Begin(b);
        inner.Savepoints["before"] = _ledger.Next();
        _ledger.Wrote(b, "INSERT undone by its own savepoint");
        _ledger.RolledBackToApplicationSavepoint(inner, "before");
        _ledger.Committed(inner);

        Assert.That(_ledger.PlanRollback(outer).LostWrites, Is.Empty);
    }

    [Test]
    public void A_rollback_that_undoes_another_connections_write_outside_a_transaction_is_a_divergence()
    {
        var a = Connection("a");
        var b = Connection("b");
        _ledger.Wrote(b, "INSERT 1");
        var outer = Begin(a);
        _ledger.Wrote(b, "INSERT 2");
        _ledger.Wrote(a, "INSERT 3");

        var effects = _ledger.PlanRollback(outer);

        Assert.That(effects.LostWrites.Select(w => w.Sql), Is.EqualTo(new[] { "INSERT 2" }),
            "a write before the transaction began is not undone, and the transaction's own connection's write is its own");
    }

    [Test]
    public void A_write_inside_the_writers_own_transaction_is_not_lost_to_anothers_rollback()
    {
        var a = Connection("a");
        var b = Connection("b");
        var outer = Begin(a);
        Begin(b);
        _ledger.Wrote(b, "INSERT");

        Assert.That(_ledger.PlanRollback(outer).LostWrites, Is.Empty, "b's transaction is discarded instead, which its next use reports");
    }

    [Test]
    public void A_failure_inside_a_transaction_turns_its_commit_into_a_rollback_and_a_rollback_revives_the_scope()
    {
        var a = Connection("a");
        var transaction = Begin(a);
        _ledger.Aborted("INSERT", "duplicate key", "a");

        Assert.That(_ledger.PlanCommit(transaction), Is.EqualTo(CommitPlan.RollBackAsAborted));
        _ledger.RolledBack(transaction, _ledger.PlanRollback(transaction));
        Assert.That(_ledger.AbortedBy, Is.Null);
    }

    [Test]
    public void A_failure_before_a_transaction_began_is_not_undone_by_its_rollback()
    {
        _ledger.Aborted("INSERT", "duplicate key", "a");
        var transaction = new SavepointTransaction(Connection("a"), "testkit_1", IsolationLevel.Unspecified, _ledger.Next());
        _ledger.Began(transaction);

        _ledger.RolledBack(transaction, _ledger.PlanRollback(transaction));

        Assert.That(_ledger.AbortedBy, Is.Not.Null);
    }

    [Test]
    public void Rolling_back_the_statement_savepoint_revives_the_transaction_the_statement_aborted()
    {
        _ledger.StatementSavepointTaken();
        _ledger.Aborted("INSERT", "duplicate key", "a");

        _ledger.StatementRolledBack();

        Assert.That(_ledger.AbortedBy, Is.Null);
        Assert.That(_ledger.StatementSavepoint, Is.Null);
    }

    [Test]
    public void Rolling_back_to_an_application_savepoint_taken_before_a_failure_revives_the_transaction()
    {
        var transaction = Begin(Connection("a"));
        transaction.Savepoints["item"] = _ledger.Next();
        _ledger.Aborted("INSERT", "duplicate key", "a");

        _ledger.RolledBackToApplicationSavepoint(transaction, "item");

        Assert.That(_ledger.AbortedBy, Is.Null);
    }
}
