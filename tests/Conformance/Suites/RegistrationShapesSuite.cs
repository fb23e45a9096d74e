using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.Conformance.App;
using Linq2DbTestKit.NUnit;
using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Remote;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;
using ProfilesApi.Data;

namespace Linq2DbTestKit.Conformance.Suites;

/// <summary>
/// The override binds an application's linq2db registrations to the request's test scope whatever their shape:
/// <c>AddLinqToDBContext</c>'s descriptors (typed or untyped options, any lifetime) or plain factories with options of
/// their own, for the context type, <c>DataOptions&lt;T&gt;</c>, <c>DataOptions</c>, <c>IDataContext</c> and the context factory.
/// </summary>
/// <remarks>
/// Each application registration points at the run's database with a real connection string, as the application's
/// configuration does in a test. Were the override to miss it, the row would be committed on a connection of its own,
/// and the look from outside after the scope would find it.
/// </remarks>
public abstract class RegistrationShapesSuite : ConformanceTest
{
    public sealed class TypedContext(DataOptions<TypedContext> options) : DataConnection(options.Options);

    public sealed class UntypedContext(DataOptions options) : DataConnection(options);

    static DataOptions ApplicationOptions(DataOptions options) =>
        options.UseConnectionString(TestRun.Database.LinqToDBProvider, TestRun.Database.ConnectionString);

    /// <summary>Resolves <typeparamref name="TService"/> inside a request of this test's scope, as the application would, and writes through it.</summary>
    async Task WriteThroughAsync<TService>(Action<IServiceCollection> register, Func<TService, IDataContext> context)
        where TService : notnull
    {
        var services = new ServiceCollection();
        register(services);
        LinqToDBRegistrations.BindToTestScopes(services);
        await using var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true, ValidateOnBuild = true });
        await using (var request = provider.CreateAsyncScope())
        {
            await request.ServiceProvider.GetRequiredService<RequestScope>().EnterAsync(Scope, CancellationToken.None);
            var db = context(request.ServiceProvider.GetRequiredService<TService>());
            await db.InsertAsync(new Item { Name = Name(typeof(TService).Name) });
        }

        using var check = NewShop();
        Assert.That(await NamesAsync(check), Is.EqualTo(new[] { typeof(TService).Name }), "the test's scope sees the application's row");
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Test]
    public Task AddLinqToDBContext_with_typed_options_binds_the_context() =>
        WriteThroughAsync<TypedContext>(s => s.AddLinqToDBContext<TypedContext>((_, o) => ApplicationOptions(o)), db => db);

    [Test]
    public Task AddLinqToDBContext_with_typed_options_binds_the_options() =>
        WriteThroughAsync<DataOptions<TypedContext>>(s => s.AddLinqToDBContext<TypedContext>((_, o) => ApplicationOptions(o)), o => new DataConnection(o.Options));

    [Test]
    public Task AddLinqToDBContext_binds_the_context_factory() =>
        WriteThroughAsync<IDataContextFactory<TypedContext>>(s => s.AddLinqToDBContext<TypedContext>((_, o) => ApplicationOptions(o)), f => f.CreateDataContext());

    [Test]
    public Task AddLinqToDBContext_with_untyped_options_binds_the_context() =>
        WriteThroughAsync<UntypedContext>(s => s.AddLinqToDBContext<UntypedContext>((_, o) => ApplicationOptions(o)), db => db);

    [Test]
    public Task AddLinqToDBContext_with_untyped_options_binds_the_options() =>
        WriteThroughAsync<DataOptions>(s => s.AddLinqToDBContext<UntypedContext>((_, o) => ApplicationOptions(o)), o => new DataConnection(o));

    [Test]
    public Task AddLinqToDBContext_as_singletons_becomes_scoped_and_bound() =>
        WriteThroughAsync<IDataContextFactory<TypedContext>>(
            s => s.AddLinqToDBContext<TypedContext>((_, o) => ApplicationOptions(o), ServiceLifetime.Singleton), f => f.CreateDataContext());

    [Test]
    public Task Options_whose_connections_come_from_a_factory_of_the_application_are_bound() =>
        WriteThroughAsync<DataOptions>(
            s => s.AddSingleton(new DataOptions().UseConnectionFactory(
                TestRun.Database.LinqToDBProvider, _ => TestRun.Database.Provider.CreateConnection(TestRun.Database.ConnectionString))),
            o => new DataConnection(o));

    [Test]
    public Task A_plain_factory_with_options_of_its_own_is_rebuilt_on_the_scope() =>
        WriteThroughAsync<TypedContext>(s => s.AddScoped(_ => new TypedContext(new DataOptions<TypedContext>(ApplicationOptions(new DataOptions())))), db => db);

    [Test]
    public Task IDataContext_over_registered_options_is_bound() =>
        WriteThroughAsync<IDataContext>(s =>
        {
            s.AddSingleton(ApplicationOptions(new DataOptions()));
            s.AddScoped<IDataContext>(p => new DataConnection(p.GetRequiredService<DataOptions>()));
        }, db => db);

    [Test]
    public async Task Resolving_outside_any_test_says_how_to_send_requests()
    {
        var services = new ServiceCollection();
        services.AddLinqToDBContext<TypedContext>((_, o) => ApplicationOptions(o));
        LinqToDBRegistrations.BindToTestScopes(services);
        await using var provider = services.BuildServiceProvider();
        await using var request = provider.CreateAsyncScope();

        // As a hosted service would: in an execution context that no test's flows into.
        Task<TypedContext> resolve;
        using (ExecutionContext.SuppressFlow())
            resolve = Task.Run(() => request.ServiceProvider.GetRequiredService<TypedContext>());

        Assert.That(() => resolve, Throws.InvalidOperationException.With.Message.Contains("CreateClient(Scope)"));
    }

    [Test]
    public Task Resolving_in_the_tests_own_flow_binds_to_the_tests_scope() =>
        WriteThroughOutsideARequestAsync();

    async Task WriteThroughOutsideARequestAsync()
    {
        var services = new ServiceCollection();
        services.AddLinqToDBContext<TypedContext>((_, o) => ApplicationOptions(o));
        LinqToDBRegistrations.BindToTestScopes(services);
        await using var provider = services.BuildServiceProvider();
        await using (var resolved = provider.CreateAsyncScope())
            await resolved.ServiceProvider.GetRequiredService<TypedContext>().InsertAsync(new Item { Name = Name("resolved-in-test") });

        using var check = NewShop();
        Assert.That(await NamesAsync(check), Is.EqualTo(new[] { "resolved-in-test" }), "the test's scope sees what the resolved context wrote");
        await EndScopeAndAssertNothingLeftAsync();
    }
}
