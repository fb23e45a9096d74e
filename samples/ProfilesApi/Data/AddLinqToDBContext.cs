// Why this file exists: real applications register their linq2db context with AddLinqToDBContext from linq2db.AspNet
// (named linq2db.Extensions since linq2db 6). That package cannot be restored from this repository's package source,
// so this file registers the same service descriptors the package's AddLinqToDBContext<TContext> produces, read from
// linq2db's ServiceConfigurationExtensions:
//
//   TryAdd   TContext                     -> TContext (type-activated)               lifetime as given (Scoped by default)
//   TryAdd   DataOptions<TContext>        -> factory: configure(provider, new DataOptions())   same lifetime
//            (DataOptions instead, when the context's constructor takes untyped DataOptions)
//   Add      IDataContextFactory<TContext> -> factory resolving TContext              same lifetime
//
// With the package available, delete this file and reference linq2db.Extensions: nothing else changes.
using System.Reflection;
using LinqToDB;
using LinqToDB.Remote;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ProfilesApi.Data;

public static class LinqToDBServiceCollectionExtensions
{
    public static IServiceCollection AddLinqToDBContext<TContext>(
        this IServiceCollection services,
        Func<IServiceProvider, DataOptions, DataOptions> configure,
        ServiceLifetime lifetime = ServiceLifetime.Scoped)
        where TContext : class, IDataContext
    {
        services.TryAdd(new ServiceDescriptor(typeof(TContext), typeof(TContext), lifetime));

        if (HasConstructorTaking<TContext>(typeof(DataOptions<TContext>)))
            services.TryAdd(new ServiceDescriptor(typeof(DataOptions<TContext>), provider => new DataOptions<TContext>(configure(provider, new DataOptions())), lifetime));
        else if (HasConstructorTaking<TContext>(typeof(DataOptions)))
            services.TryAdd(new ServiceDescriptor(typeof(DataOptions), provider => configure(provider, new DataOptions()), lifetime));
        else
            throw new ArgumentException($"Missing constructor accepting '{nameof(DataOptions)}' on type {typeof(TContext).Name}.");

        services.Add(new ServiceDescriptor(typeof(IDataContextFactory<TContext>),
            provider => new DataContextFactory<TContext>(_ => provider.GetRequiredService<TContext>()), lifetime));
        return services;
    }

    static bool HasConstructorTaking<TContext>(Type parameterType) =>
        typeof(TContext).GetConstructors(BindingFlags.Public | BindingFlags.Instance)
            .Any(constructor => constructor.GetParameters().Any(parameter => parameter.ParameterType == parameterType));
}
