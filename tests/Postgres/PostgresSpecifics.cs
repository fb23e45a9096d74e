using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>What only PostgreSQL does: the savepoint dialect, and a transaction that one failed statement aborts.</summary>
public sealed class PostgresSpecifics : ConformanceTest
{
    [Test]
    public void Application_transactions_become_savepoint_release_and_rollback_to()
    {
        using var outer = NewShop();
        using var inner = NewShop();
        using (var transaction = outer.BeginTransaction())
        {
            using (var nested = inner.BeginTransaction())
            {
                inner.Insert(new Item { Name = Name("rolled-back") });
                nested.Rollback();
            }

            transaction.Commit();
        }

        Assert.That(Scope.Trace, Does.Match(@"SAVEPOINT (testkit_\d+)[\s\S]*SAVEPOINT (testkit_\d+)[\s\S]*ROLLBACK TO SAVEPOINT \2[\s\S]*RELEASE SAVEPOINT \1"));
    }

    [Test]
    public void A_failed_statement_outside_any_transaction_aborts_the_test_and_the_next_statement_says_which_one()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });
        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.UniqueViolation));

        var error = Assert.Throws<TestScopeException>(() => db.Items.Count());
        Assert.That(error!.Message, Does.Contain("aborted the test's transaction")
            .And.Contain("INSERT INTO")
            .And.Contain("ux_items_name")
            .And.Contain("inside a transaction"));
        Assert.That(error.InnerException, Is.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.InFailedSqlTransaction));
    }

    [Test]
    public void Inside_an_application_transaction_the_message_says_which_transaction_to_roll_back()
    {
        using var db = NewShop();
        using var transaction = db.BeginTransaction();
        db.Insert(new Item { Name = Name("a") });
        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>());

        Assert.That(() => db.Items.Count(), Throws.InstanceOf<TestScopeException>().With.Message.Contains("Roll back the transaction"));
        transaction.Rollback();
        Assert.That(db.Items.Count(i => i.Name.StartsWith(Tag)), Is.Zero, "the rollback to the savepoint revived the scope");
    }

    [Test]
    public void Committing_a_failed_application_transaction_rolls_it_back_as_PostgreSQL_does()
    {
        using var db = NewShop();
        db.Insert(new Item { Name = Name("before") });

        using (var transaction = db.BeginTransaction())
        {
            db.Insert(new Item { Name = Name("in-failed-transaction") });
            Assert.That(() => db.Insert(new Item { Name = Name("before") }), Throws.InstanceOf<PostgresException>());
            transaction.Commit();
        }

        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "before" }), "PostgreSQL's COMMIT of a failed transaction is a ROLLBACK");
        db.Insert(new Item { Name = Name("after") });
        Assert.That(Scope.Trace, Does.Contain("commit after a failed statement → ROLLBACK TO SAVEPOINT"));
    }
}
