using Linq2DbTestKit.SqlServer;

namespace Linq2DbTestKit.Tests.Unit;

/// <summary>SQL Server's limit on savepoint names is the kit's rule, not the server's, which may cut a long name short.</summary>
public sealed class SavepointNameTests
{
    [Test]
    public void An_application_savepoint_name_over_32_characters_is_refused_by_the_kit_with_its_length()
    {
        var name = new string('s', 33);

        Assert.That(() => SqlServerDatabaseProvider.Instance.CheckSavepointName(name),
            Throws.ArgumentException.With.Message.Contains("33 characters").And.Message.Contains("at most 32"));
        Assert.That(() => SqlServerDatabaseProvider.Instance.CheckSavepointName(new string('s', 32)), Throws.Nothing);
    }

    [Test]
    public void The_kits_own_savepoint_names_stay_within_32_characters() =>
        Assert.That(SqlServerDatabaseProvider.Instance.SavepointName(long.MaxValue), Has.Length.LessThanOrEqualTo(SqlServerDatabaseProvider.MaxSavepointNameLength));
}
