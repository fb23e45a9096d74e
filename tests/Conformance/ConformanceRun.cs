using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using NUnit.Framework;
using ProfilesApi.Data;

namespace Linq2DbTestKit.Conformance;

/// <summary>
/// The run of a provider's test project: both schemas applied once (the kit's test application and the sample API,
/// each by its own migrations), and after the last test, a look from outside the kit that every table is empty.
/// </summary>
public abstract class ConformanceRun(DatabaseProvider provider) : TestRun(provider)
{
    static readonly string[] Tables = ["items", "item_notes", "profiles"];

    /// <summary>What the run's database holds once prepared, seen from outside: <see cref="Outside.StateAsync"/>.</summary>
    public static IReadOnlyDictionary<string, string> PreparedState { get; private set; } = new Dictionary<string, string>();

    protected override async Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        await ShopSchema.ApplyAsync(database);
        ProfilesDatabase.Migrate(database.Provider.Name, database.ConnectionString);
        PreparedState = await Outside.StateAsync();
    }

    /// <summary>Runs before the kit drops the database (a derived class's tear-down runs before its base's).</summary>
    [OneTimeTearDown]
    public async Task NothingIsLeftBehind()
    {
        var left = new List<string>();
        foreach (var table in Tables)
        {
            await using var connection = Outside.Open();
            await using var command = connection.CreateCommand();
            command.CommandText = $"SELECT COUNT(*) FROM {table}";
            var count = Convert.ToInt64(await command.ExecuteScalarAsync(), System.Globalization.CultureInfo.InvariantCulture);
            if (count != 0)
                left.Add($"{table}: {count}");
        }

        Assert.That(left, Is.Empty, "rows left in the run's database after every test ended");
        await TestContext.Progress.WriteLineAsync($"linq2db-testkit: after the run, {string.Join(", ", Tables)} are empty");
    }
}
