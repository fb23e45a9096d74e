namespace Linq2DbTestKit.NUnit;

/// <summary>
/// The base of a test class whose tests share seed data inserted once for the class: <see cref="SeedAsync"/> runs
/// before the class's first test, inside a transaction that is rolled back after the class's last test. Each test runs
/// in a savepoint on top of it — the application's own transactions nest further — and is rolled back to the seed as
/// committed, so a test that changes the seed leaves it unchanged for the next.
/// </summary>
/// <remarks>
/// <para>
/// The tests of such a class share one connection, so they run one after another on the class's own worker, whatever
/// <c>[Parallelizable]</c> says: the class is <c>[SingleThreaded]</c>. Classes still run in parallel with each other, and
/// no worker ever waits for a test that has not begun.
/// </para>
/// <para>
/// Inside <see cref="SeedAsync"/>, <see cref="DatabaseTest.Scope"/> and <see cref="DatabaseTest.Db"/> are the class's,
/// and contexts the application builds itself join it, as in a test. Keep what the tests need in the database, or in
/// fields: NUnit shares one instance of the class between its tests unless the class says
/// <c>[FixtureLifeCycle(LifeCycle.InstancePerTestCase)]</c>, and then only the first test's instance sees them.
/// </para>
/// <para>A <see cref="RealCommitsAttribute"/> test cannot be part of such a class: it would wait for the class's transaction forever.</para>
/// </remarks>
[global::NUnit.Framework.SingleThreaded]
public abstract class SeededDatabaseTest : DatabaseTest
{
    /// <summary>Inserts the class's seed data. Runs once, in the class's transaction, before its first test.</summary>
    protected abstract Task SeedAsync();

    internal Task RunSeedAsync() => SeedAsync();
}
