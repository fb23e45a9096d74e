using NUnit.Framework;

namespace Consumer.Tests.Unit;

/// <summary>A project's pure unit tests, outside the namespace of the kit's set-up fixture: they need no database.</summary>
public sealed class PureTests
{
    [Test]
    public void Runs_without_a_database() => Assert.That(string.Join(",", new[] { "a", "b" }), Is.EqualTo("a,b"));
}
