using Linq2DbTestKit.Conformance.App;
using LinqToDB;
using NUnit.Framework;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>A scope's trace shows what the test sent: linq2db's SQL, the savepoints, raw commands and errors.</summary>
public abstract class TraceSuite : ConformanceTest
{
    [Test]
    public async Task The_trace_holds_linq2db_sql_savepoints_raw_commands_and_errors_in_order()
    {
        using (var db = NewShop())
        {
            using var transaction = db.BeginTransaction();
            db.Insert(new Item { Name = Name("traced") });
            transaction.Commit();
            _ = db.Items.Where(i => i.Name == Name("traced")).ToList();
        }

        await using (var connection = Scope.OpenConnection())
        await using (var command = connection.CreateCommand())
        {
            command.CommandText = "SELECT COUNT(*) / 0 FROM items";
            Assert.That(() => command.ExecuteScalar(), Throws.Exception);
        }

        var trace = Scope.Trace;
        var savepoint = trace.IndexOf("begin transaction →", StringComparison.Ordinal);
        var insert = trace.IndexOf("INSERT INTO", StringComparison.Ordinal);
        var select = trace.IndexOf("SELECT", insert, StringComparison.Ordinal);
        var raw = trace.IndexOf("connection #", StringComparison.Ordinal);
        var error = trace.IndexOf("failed", raw, StringComparison.Ordinal);
        Assert.That(new[] { savepoint, insert, select, raw, error }, Is.All.GreaterThanOrEqualTo(0), trace);
        Assert.That(new[] { savepoint, insert, select, raw, error }, Is.Ordered, trace);
        Assert.That(trace, Does.Contain(Name("traced")), "parameter values are in the trace");
    }

    [Test]
    public async Task The_trace_of_a_scope_holds_nothing_of_another_scope()
    {
        await using var other = await Scope.Database.BeginScopeAsync();
        using (var db = new ShopDb(other.Options))
            db.Insert(new Item { Name = Name("elsewhere") });
        using (var db = NewShop())
            db.Insert(new Item { Name = Name("here") });

        Assert.That(Scope.Trace, Does.Contain(Name("here")).And.Not.Contain(Name("elsewhere")));
        Assert.That(other.Trace, Does.Contain(Name("elsewhere")).And.Not.Contain(Name("here")));
    }

    [Test]
    public void The_trace_never_shows_the_password()
    {
        var password = Outside.Password();
        Assume.That(password, Is.Not.Null.And.Not.Empty, "the connection string has a password");
        using (var db = NewShop())
        {
            db.Insert(new Item { Name = Name(password!) });
            Assert.That(() => db.Insert(new Item { Name = Name(password!) }), Throws.Exception);
        }

        // Where it stands as a value of its own: inside a longer word (a password "x" in "ExecuteReader") it is not shown.
        Assert.That(Scope.Trace, Does.Not.Contain(Name(password!)), "the password is masked even where it appears as data");
        Assert.That(Scope.Trace, Does.Contain(Name("***")));
    }
}
