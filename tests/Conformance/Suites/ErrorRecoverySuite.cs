using System.Data.Common;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>An application that expects a database error, catches it inside its own transaction and rolls that back, keeps working.</summary>
public abstract class ErrorRecoverySuite(Mode mode) : ConformanceTest
{
    readonly AppCode _app = new(mode, TransactionCalls.TransactionObject);

    /// <summary>Application code: add an item unless one of that name exists, telling which happened.</summary>
    async Task<bool> TryAddAsync(ShopDb db, string name)
    {
        var transaction = await _app.BeginAsync(db);
        try
        {
            await _app.InsertAsync(db, name);
            await _app.CommitAsync(transaction);
            return true;
        }
        catch (DbException)
        {
            await _app.RollbackAsync(transaction);
            return false;
        }
    }

    [Test]
    public async Task A_caught_unique_violation_rolled_back_in_its_own_transaction_leaves_the_scope_working()
    {
        using var db = NewShop();
        Assert.That(await TryAddAsync(db, Name("a")), Is.True);
        Assert.That(await TryAddAsync(db, Name("a")), Is.False, "the duplicate is refused by the unique index");
        Assert.That(await TryAddAsync(db, Name("b")), Is.True, "the scope goes on after the refused insert");

        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "a", "b" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task A_failure_inside_a_nested_transaction_is_contained_by_rolling_that_one_back()
    {
        using var outer = NewShop();
        using var inner = NewShop();
        var outerTransaction = await _app.BeginAsync(outer);
        await _app.InsertAsync(outer, Name("a"));

        Assert.That(await TryAddAsync(inner, Name("a")), Is.False);

        await _app.InsertAsync(outer, Name("c"));
        await _app.CommitAsync(outerTransaction);
        Assert.That(await NamesAsync(outer, mode), Is.EqualTo(new[] { "a", "c" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public async Task Rolling_back_to_an_application_savepoint_after_a_caught_error_keeps_the_rest_of_the_transaction()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("taken") });

        var transaction = await _app.BeginAsync(db);
        await _app.InsertAsync(db, Name("kept"));
        db.Transaction!.Save("before_duplicate");
        Assert.That(async () => await _app.InsertAsync(db, Name("taken")), Throws.InstanceOf<DbException>());
        db.Transaction.Rollback("before_duplicate");
        await _app.InsertAsync(db, Name("after"));
        await _app.CommitAsync(transaction);

        Assert.That(await NamesAsync(db, mode), Is.EqualTo(new[] { "after", "kept", "taken" }));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public void A_failed_statement_reaches_the_application_as_the_drivers_own_error()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        using var transaction = db.BeginTransaction();

        var error = Assert.Catch<DbException>(() => db.Insert(new Item { Name = Name("a") }));
        Assert.That(error, Is.Not.InstanceOf<TestScopeException>(), "the first error is the driver's, for the application to catch");
    }
}
