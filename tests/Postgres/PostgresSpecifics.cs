using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using LinqToDB.Data;
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

    [Test]
    public void With_statement_savepoints_a_failed_statement_rolls_back_alone_and_the_test_goes_on()
    {
        Scope.StatementSavepoints = true;
        using var db = NewShop();
        db.Insert(new Item { Name = Name("a") });

        Assert.That(() => db.Insert(new Item { Name = Name("a") }), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.UniqueViolation));
        Assert.That(() => db.Execute<int>("SELECT 1 / 0"), Throws.InstanceOf<PostgresException>().With.Property("SqlState").EqualTo(PostgresErrorCodes.DivisionByZero));
        db.Insert(new Item { Name = Name("b") });

        using (var transaction = db.BeginTransaction())
        {
            Assert.That(() => db.Insert(new Item { Name = Name("b") }), Throws.InstanceOf<PostgresException>());
            db.Insert(new Item { Name = Name("c") });
            transaction.Commit();
        }

        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(Scope.Trace, Does.Contain("the failed statement was rolled back alone"));
    }

    [Test]
    public void With_statement_savepoints_a_reader_that_fails_after_it_began_rolls_back_alone()
    {
        Scope.StatementSavepoints = true;
        using var connection = Scope.OpenConnection();
        using (var command = connection.CreateCommand())
        {
            // The first row comes back; the division by zero of the third fails while reading.
            command.CommandText = "SELECT 10 / (3 - i) FROM generate_series(1, 3) AS i";
            using var reader = command.ExecuteReader();
            Assert.That(() => { while (reader.Read()) { } }, Throws.InstanceOf<PostgresException>());
        }

        using var db = NewShop();
        db.Insert(new Item { Name = Name("after") });
        Assert.That(NamesAsync(db).Result, Is.EqualTo(new[] { "after" }));
    }

    [Test]
    public void Statement_savepoints_follow_the_environment_variable()
    {
        var options = TestDatabaseOptions.FromEnvironment(PostgreSql.PostgreSqlDatabaseProvider.Instance, name => name == "TESTKIT_STATEMENT_SAVEPOINTS" ? "true" : null);

        Assert.That(options.StatementSavepoints, Is.True);
        Assert.That(Scope.StatementSavepoints, Is.EqualTo(Scope.Database.StatementSavepoints));
    }
}
