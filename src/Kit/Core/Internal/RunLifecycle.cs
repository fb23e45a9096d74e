using System.Diagnostics;
using System.Globalization;
using System.Reflection;

namespace Linq2DbTestKit.Internal;

/// <summary>
/// A test assembly's run around its database, as every test framework integration runs it: before the first test the
/// database is created (or copied from the schema template) and prepared once, and what every table holds is recorded;
/// after the last test every table is compared with that, and the database is dropped. Each integration calls these
/// from its framework's own run-level hooks and reports in its own way.
/// </summary>
internal static class RunLifecycle
{
    /// <summary>Creates and prepares the run's database.</summary>
    /// <param name="provider">The database's provider.</param>
    /// <param name="options">The run's options, from the environment unless the user's run says otherwise.</param>
    /// <param name="runType">The user's run class: it names the schema template.</param>
    /// <param name="schemaInputs">What the preparation applies, for the schema template; <see langword="null"/> for none.</param>
    /// <param name="prepare">The user's preparation: migrations, seed data.</param>
    /// <param name="usesRealCommits">Whether a test of the assembly commits for real: the run then prepares for it before any scope begins.</param>
    /// <param name="created">Receives the database once created, before the preparation (whose code reads the run's database); <see langword="null"/> when the preparation failed and the database is gone.</param>
    /// <param name="progress">Receives the lines a user reads (without the kit's prefix).</param>
    /// <param name="cancellationToken">Cancels the preparation.</param>
    public static async Task<TestDatabase> StartAsync(
        DatabaseProvider provider, TestDatabaseOptions options, Type runType, IEnumerable<object>? schemaInputs,
        Func<TestDatabase, CancellationToken, Task> prepare, bool usesRealCommits, Action<TestDatabase?> created, Action<string> progress, CancellationToken cancellationToken)
    {
        options = options with { Progress = options.Progress ?? progress };
        if (schemaInputs is { } inputs && options.SchemaFingerprint is null)
        {
            options = options with
            {
                SchemaTemplate = options.SchemaTemplate ?? $"{runType.Assembly.GetName().Name}/{runType.FullName}",
                SchemaFingerprint = SchemaFingerprint.Compute(provider, inputs),
            };
        }

        var preparation = Stopwatch.StartNew();
        var database = await TestDatabase.CreateAsync(provider, options, cancellationToken).ConfigureAwait(false);
        progress($"this run uses {database}");
        created(database);
        try
        {
            if (!database.SchemaFromTemplate)
                await prepare(database, cancellationToken).ConfigureAwait(false);
            if (usesRealCommits)
                await database.PrepareRealCommitsAsync(cancellationToken).ConfigureAwait(false);
            await database.RecordPreparedStateAsync(cancellationToken).ConfigureAwait(false);
            await database.SaveTemplateAsync(cancellationToken).ConfigureAwait(false);
            var template = database.TemplateStatus is { } status ? $" ({status})" : string.Empty;
            progress(string.Create(CultureInfo.InvariantCulture, $"the run's database was prepared in {preparation.Elapsed.TotalSeconds:0.000} s{template}"));
            return database;
        }
        catch
        {
            created(null);
            await database.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Compares every table with its prepared state and drops the database, unless it is to be kept. Returns the message
    /// that must fail the run when anything the tests did persisted; <see langword="null"/> when nothing did.
    /// </summary>
    /// <param name="database">The run's database.</param>
    /// <param name="progress">Receives the lines a user reads (without the kit's prefix).</param>
    /// <param name="whereClassesAreNamed">Where the user finds after which test class each change was first seen; <see langword="null"/> where the framework has no look after each class.</param>
    public static async Task<string?> EndAsync(TestDatabase database, Action<string> progress, string? whereClassesAreNamed)
    {
        string? leaks;
        try
        {
            leaks = await database.FindLeaksAsync().ConfigureAwait(false);
            foreach (var note in database.TakeNotes())
                progress(note);
        }
        finally
        {
            await database.DisposeAsync().ConfigureAwait(false);
            if (database.KeepsDatabase)
                progress($"kept {database}");
        }

        if (leaks is not null)
        {
            var message = $"Data persisted in the run's database after the tests, although every test's scope was rolled back: something committed " +
                          $"outside the scopes (code that connected on its own, in a test or in the background).\n  {leaks}\n" +
                          $"{(whereClassesAreNamed is null ? string.Empty : whereClassesAreNamed + " ")}A test that fails with a bypass report names its statements. To commit seed data on purpose, do it in " +
                          $"PrepareDatabaseAsync, or set {TestKitEnvironment.LeakCheckVariable}=false.";
            progress(message);
            return message;
        }

        if (database.ChecksForLeaks)
            progress($"after the run, every table of {database.Name} holds what it held once prepared");
        return null;
    }

    /// <summary>
    /// After a test class: what persisted since the previous look, and what the run noted meanwhile (an application's
    /// start-up that changed the database), once, as lines to print; <see langword="null"/> when there is nothing to say.
    /// </summary>
    public static string? CheckAfterClass(TestDatabase? database, string testClass)
    {
        if (database is not { ChecksForLeaks: true })
            return null;

        var leaks = database.FindNewLeaksAsync().GetAwaiter().GetResult() is { } found
            ? $"after {testClass} (and the classes that ran beside it), committed data persisted:\n  {found}"
            : null;
        var lines = database.TakeNotes().Append(leaks).OfType<string>().ToList();
        return lines.Count == 0 ? null : string.Join("\n", lines);
    }

    /// <summary>Whether a type or method of <paramref name="assembly"/> carries <paramref name="attribute"/> (or one derived from it).</summary>
    public static bool AnyMarked(Assembly assembly, Type attribute)
    {
        const BindingFlags Methods = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        return TypesOf(assembly).Any(type => type.IsDefined(attribute, inherit: true) || type.GetMethods(Methods).Any(method => method.IsDefined(attribute, inherit: true)));
    }

    /// <summary>The classes of <paramref name="assembly"/> that derive from <paramref name="baseType"/> and can be created.</summary>
    public static IReadOnlyList<Type> ConcreteTypes(Assembly assembly, Type baseType) =>
        [.. TypesOf(assembly).Where(type => type is { IsClass: true, IsAbstract: false, ContainsGenericParameters: false } && baseType.IsAssignableFrom(type))];

    static Type[] TypesOf(Assembly assembly)
    {
        try
        {
            return assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException exception)
        {
            return [.. exception.Types.OfType<Type>()];
        }
    }
}
