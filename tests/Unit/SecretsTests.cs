namespace Linq2DbTestKit.Tests.Unit;

/// <summary>No password in a message, and no message made unreadable by a short or common password.</summary>
public sealed class SecretsTests
{
    [TestCase("postgres", "Host=h;Username=u;Password=postgres;Database=d", "Host=h;Username=u;Password=***;Database=d")]
    [TestCase("postgres", "a throwaway PostgreSQL cluster from /usr/lib/postgresql/15/bin", "a throwaway PostgreSQL cluster from /usr/lib/postgresql/15/bin")]
    [TestCase("x", "DataConnection #2: ExecuteReader failed: PostgresException: syntax error", "DataConnection #2: ExecuteReader failed: PostgresException: syntax error")]
    [TestCase("x", "CREATE ROLE app PASSWORD 'x'", "CREATE ROLE app PASSWORD '***'")]
    [TestCase("s3cret", "postgres://app:s3cret@db/app", "postgres://app:***@db/app")]
    [TestCase("Pa$$w0rd!", "Password=Pa$$w0rd!;", "Password=***;")]
    [TestCase("!secret!", "x!secret!y", "x***y")]
    [TestCase("secret", "secret", "***")]
    public void A_password_is_masked_where_it_stands_as_a_value_of_its_own(string password, string text, string expected)
    {
        Assert.That(Secrets.Scrub(text, password), Is.EqualTo(expected));
        Assert.That(Secrets.Shows(text, password), Is.EqualTo(text != expected));
    }

    [Test]
    public void A_drivers_exception_that_shows_the_password_is_not_attached()
    {
        var shows = new InvalidOperationException("outer", new ArgumentException("Password=hunter2; is wrong"));
        var readable = new InvalidOperationException("database \"hunter2db\" does not exist");

        Assert.That(Secrets.SafeInner(shows, "hunter2"), Is.Null);
        Assert.That(Secrets.SafeInner(readable, "hunter2"), Is.SameAs(readable));
        Assert.That(Secrets.SafeInner(shows, null), Is.SameAs(shows));
    }
}
