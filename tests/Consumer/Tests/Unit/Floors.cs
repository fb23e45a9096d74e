using System.Reflection;
using System.Text.Json;
using NUnit.Framework;

namespace Consumer.Tests.Unit;

/// <summary>
/// This project runs each dependency of the kit at the lowest version the kit declares, not a newer one that something
/// else pulled in: the versions the build resolved, from the project's deps.json.
/// </summary>
public sealed class Floors
{
    [TestCase("NUnit", "NUnitFloor")]
    [TestCase("Npgsql", "NpgsqlFloor")]
    [TestCase("Microsoft.Data.SqlClient", "SqlClientFloor")]
    [TestCase("Microsoft.AspNetCore.Mvc.Testing", "MvcTestingFloor")]
    [TestCase("linq2db", "Linq2DbFloor")]
    public void The_dependency_runs_at_its_floor(string package, string floor)
    {
        var expected = typeof(Floors).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == floor).Value;
        using var deps = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Consumer.Tests.deps.json")));
        var resolved = deps.RootElement.GetProperty("libraries").EnumerateObject()
            .Select(library => library.Name.Split('/'))
            .Where(name => name[0] == package)
            .Select(name => name[1]);

        Assert.That(resolved, Is.EqualTo(new[] { expected }));
    }
}
