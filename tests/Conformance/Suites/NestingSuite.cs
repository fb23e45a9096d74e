using System.Data;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// Application transactions nest inside the test's transaction as savepoints, to any depth, sync and async, through the
/// transaction object or the DataConnection's methods; whatever they commit is gone when the scope ends.
/// </summary>
public abstract class NestingSuite(Mode mode, TransactionCalls calls) : ConformanceTest
{
    readonly AppCode _app = new(mode, calls);

    [Test]
    public async Task Committed_transaction_is_visible_in_the_test_and_gone_after_it()
    {
        using var db = NewShop();
        var transaction = await _app.BeginAsync(db);
        await _app.InsertAsync(db, Name("a"));
        await _app.CommitAsync(transaction);

        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "a" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task An_outer_rollback_that_takes_what_another_connection_committed_fails_the_test()
    {
        using var outer = NewShop();
        using var inner = NewShop();

        var outerTransaction = await _app.BeginAsync(outer);
        await _app.InsertAsync(outer, Name("outer"));
        var innerTransaction = await _app.BeginAsync(inner);
        await _app.InsertAsync(inner, Name("inner"));
        await _app.CommitAsync(innerTransaction);
        Assert.That(await NamesAsync(outer, mode), Is.EqualTo(new[] { "inner", "outer" }));

        await _app.RollbackAsync(outerTransaction);

        // In the scope the inner savepoint was inside the outer one; in production the inner connection's commit was durable.
        Assert.That(await NamesAsync(outer, mode), Is.Empty);
        Assert.That(Scope.Divergences, Has.Count.EqualTo(1));
        Assert.That(Scope.Divergences[0], Does.Contain("DataConnection #2 committed its transaction").And.Contain("of DataConnection #1, begun before it")
            .And.Contain("INSERT").And.Contain("would have kept what DataConnection #2 committed").And.Contain("real-commit test"));
        await EndScopeAndAssertDivergedAsync("committed its transaction");
    }

    [Test]
    public async Task Inner_rollback_keeps_what_the_outer_transaction_commits()
    {
        using var outer = NewShop();
        using var inner = NewShop();

        var outerTransaction = await _app.BeginAsync(outer);
        await _app.InsertAsync(outer, Name("outer-before"));
        var innerTransaction = await _app.BeginAsync(inner);
        await _app.InsertAsync(inner, Name("inner"));
        await _app.RollbackAsync(innerTransaction);
        await _app.InsertAsync(outer, Name("outer-after"));
        await _app.CommitAsync(outerTransaction);

        Assert.That(await NamesAsync(outer, mode), Is.EqualTo(new[] { "outer-after", "outer-before" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Three_levels_the_first_rollback_takes_both_commits_of_the_others_and_says_so_for_each()
    {
        using var first = NewShop();
        using var second = NewShop();
        using var third = NewShop();

        var level1 = await _app.BeginAsync(first);
        await _app.InsertAsync(first, Name("1"));
        var level2 = await _app.BeginAsync(second);
        await _app.InsertAsync(second, Name("2"));
        var level3 = await _app.BeginAsync(third);
        await _app.InsertAsync(third, Name("3"));
        await _app.CommitAsync(level3);
        await _app.CommitAsync(level2);
        Assert.That(await NamesAsync(first, mode), Is.EqualTo(new[] { "1", "2", "3" }));

        await _app.RollbackAsync(level1);

        Assert.That(await NamesAsync(first, mode), Is.Empty);
        Assert.That(Scope.Divergences, Has.Count.EqualTo(2));
        Assert.That(Scope.Divergences, Has.One.Contains("DataConnection #3 committed its transaction").And.One.Contains("DataConnection #2 committed its transaction"));
        await EndScopeAndAssertDivergedAsync("committed its transaction");
    }

    [Test]
    public async Task A_middle_rollback_that_takes_the_innermost_commit_fails_the_test()
    {
        using var first = NewShop();
        using var second = NewShop();
        using var third = NewShop();

        var level1 = await _app.BeginAsync(first);
        await _app.InsertAsync(first, Name("1"));
        var level2 = await _app.BeginAsync(second);
        await _app.InsertAsync(second, Name("2"));
        var level3 = await _app.BeginAsync(third);
        await _app.InsertAsync(third, Name("3"));
        await _app.CommitAsync(level3);

        await _app.RollbackAsync(level2);
        await _app.CommitAsync(level1);

        Assert.That(await NamesAsync(first, mode), Is.EqualTo(new[] { "1" }));
        Assert.That(Scope.Divergences, Has.Count.EqualTo(1).And.One.Contains("DataConnection #3 committed its transaction").And.One.Contains("of DataConnection #2, begun before it"));
        await EndScopeAndAssertDivergedAsync("committed its transaction");
    }

    [Test]
    public async Task A_commit_with_no_write_and_one_that_no_rollback_undoes_are_no_divergence()
    {
        using var outer = NewShop();
        using var inner = NewShop();

        var outerTransaction = await _app.BeginAsync(outer);
        var readOnly = await _app.BeginAsync(inner);
        _ = await NamesAsync(inner, mode);
        await _app.CommitAsync(readOnly);
        await _app.RollbackAsync(outerTransaction);

        var again = await _app.BeginAsync(outer);
        var kept = await _app.BeginAsync(inner);
        await _app.InsertAsync(inner, Name("kept"));
        await _app.CommitAsync(kept);
        await _app.CommitAsync(again);

        Assert.That(Scope.Divergences, Is.Empty);
        Assert.That(await NamesAsync(outer, mode), Is.EqualTo(new[] { "kept" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Three_levels_all_committed_are_all_visible_until_the_test_ends()
    {
        using var first = NewShop();
        using var second = NewShop();
        using var third = NewShop();

        var level1 = await _app.BeginAsync(first, IsolationLevel.ReadCommitted);
        await _app.InsertAsync(first, Name("1"));
        var level2 = await _app.BeginAsync(second, IsolationLevel.RepeatableRead);
        await _app.InsertAsync(second, Name("2"));
        var level3 = await _app.BeginAsync(third, IsolationLevel.Serializable);
        await _app.InsertAsync(third, Name("3"));
        await _app.CommitAsync(level3);
        await _app.CommitAsync(level2);
        await _app.CommitAsync(level1);

        Assert.That(await NamesAsync(first, mode), Is.EqualTo(new[] { "1", "2", "3" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task An_exception_escaping_a_transaction_block_rolls_back_just_that_block()
    {
        using var outer = NewShop();
        using var inner = NewShop();
        var outerTransaction = await _app.BeginAsync(outer);
        await _app.InsertAsync(outer, Name("before"));

        await Assert.ThrowsAsync(Is.TypeOf<InvalidOperationException>().And.Message.Contains("the application failed"), async () =>
        {
            if (mode == Mode.Async)
            {
                await using var block = await inner.BeginTransactionAsync();
                await _app.InsertAsync(inner, Name("in-block"));
                throw new InvalidOperationException("the application failed inside its transaction");
            }
            else
            {
                using var block = inner.BeginTransaction();
                await _app.InsertAsync(inner, Name("in-block"));
                throw new InvalidOperationException("the application failed inside its transaction");
            }
        });


        await _app.InsertAsync(outer, Name("after"));
        await _app.CommitAsync(outerTransaction);

        Assert.That(await NamesAsync(outer, mode), Is.EqualTo(new[] { "after", "before" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Disposing_a_committed_transaction_leaves_its_work_and_the_connection_ready_for_the_next()
    {
        using var db = NewShop();

        // linq2db's DisposeAsync calls DisposeTransactionAsync even after CommitAsync; the sync Dispose does not.
        if (mode == Mode.Async)
        {
            await using var transaction = await db.BeginTransactionAsync();
            await _app.InsertAsync(db, Name("committed"));
            await transaction.CommitAsync();
        }
        else
        {
            using var transaction = db.BeginTransaction();
            await _app.InsertAsync(db, Name("committed"));
            transaction.Commit();
        }

        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "committed" }));

        var next = await _app.BeginAsync(db);
        await _app.InsertAsync(db, Name("rolled-back"));
        await _app.RollbackAsync(next);

        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "committed" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task The_test_can_hold_a_transaction_around_application_transactions()
    {
        var testTransaction = await _app.BeginAsync(Db);
        using (var app = NewShop())
        {
            var appTransaction = await _app.BeginAsync(app);
            await _app.InsertAsync(app, Name("by-app"));
            await _app.CommitAsync(appTransaction);
        }

        using var check = NewShop();
        Assert.That(await NamesAsync(check, mode), Is.EqualTo(new[] { "by-app" }));
        await _app.RollbackAsync(testTransaction);
        Assert.That(await NamesAsync(check, mode), Is.Empty);
    }

    [Test]
    public async Task Eager_loading_runs_inside_the_scope_with_or_without_an_application_transaction()
    {
        using var db = NewShop();
        var item = new Item { Name = Name("loaded") };
        item.Id = mode == Mode.Async ? await db.InsertWithInt64IdentityAsync(item) : db.InsertWithInt64Identity(item);
        db.Insert(new ItemNote { ItemId = item.Id, Text = "first" });
        db.Insert(new ItemNote { ItemId = item.Id, Text = "second" });

        // Without a transaction attached, linq2db wraps eager loading in a RepeatableRead transaction of its own.
        var loaded = db.Items.LoadWith(i => i.Notes).Single(i => i.Name == Name("loaded"));
        Assert.That(loaded.Notes.Select(n => n.Text).Order(), Is.EqualTo(new[] { "first", "second" }));

        var transaction = await _app.BeginAsync(db);
        var again = db.Items.LoadWith(i => i.Notes).Single(i => i.Name == Name("loaded"));
        await _app.CommitAsync(transaction);
        Assert.That(again.Notes, Has.Count.EqualTo(2));
        await EndScopeAndAssertNothingLeftAsync();
    }
}
